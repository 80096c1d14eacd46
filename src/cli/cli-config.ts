import { loadConfig, type Config } from '../config/load.js';
import { readEmbeddedState } from '../runtime/embedded.js';

/**
 * The configuration an operator command runs with: the environment, plus, when NATS_URLS is empty,
 * the nats-server that a `kgents serve` on the same DATA_DIR started for itself.
 */
export function cliConfig(): Config {
  const config = loadConfig();
  if (config.NATS_URLS.length > 0) return config;
  const embedded = readEmbeddedState(config.DATA_DIR)?.nats_url;
  if (!embedded) return config;
  process.stderr.write(`kgents: NATS_URLS is empty: using the nats-server of the running kgents serve at ${embedded}\n`);
  return loadConfig(process.env, { NATS_URLS: embedded });
}
