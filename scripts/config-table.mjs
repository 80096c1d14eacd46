#!/usr/bin/env node
// Prints README's configuration table from the schema (after `npm run build`); paste it over the old one.
const { CONFIG_VARS } = await import('../dist/src/config/schema.js');
console.log('| Variable | Default | Meaning |\n|---|---|---|');
for (const [name, spec] of Object.entries(CONFIG_VARS)) console.log(`| \`${name}\` | \`${spec.default}\` | ${spec.doc} |`);
