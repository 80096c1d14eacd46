# syntax=docker/dockerfile:1
# The kgents API image: `kgents serve` by default; the backup CronJob runs `kgents backup` from it.
# Multi-stage: compile with dev dependencies, ship production dependencies only, run as non-root.
# Build: docker build -t registry.example.com/kgents/api:0.1.0 .   (docs/deployment.md)

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile TypeScript -----------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

# --- deps: production dependencies only ------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8000 \
    DATA_DIR=/var/lib/kgents \
    EMBEDDED_SERVICES=off
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY package.json ./
# A numeric non-root user, so Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 kgents \
 && useradd --system --uid 10001 --gid kgents --home-dir /app --shell /usr/sbin/nologin kgents \
 && mkdir -p /var/lib/kgents && chown kgents:kgents /var/lib/kgents
USER 10001:10001
EXPOSE 8000
# Liveness as Kubernetes probes it (GET /health, which touches no dependency). Node's own fetch:
# the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
