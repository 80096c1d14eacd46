#!/usr/bin/env node
import { ConfigError } from '../config/load.js';
import { type Command, UsageError } from './command.js';
import { commands } from './commands/index.js';

function printHelp(list: readonly Command[]): void {
  const width = Math.max(...list.map((c) => c.name.length));
  process.stdout.write(`kgents: the kgents platform service and operations toolkit\n\nUsage: kgents <command> [options]\n\nCommands:\n${
    list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')
  }\n\nRun 'kgents <command> --help' for a command's options.\n`);
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    printHelp(commands);
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`kgents: unknown command "${name}"\n`);
    printHelp(commands);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kgents ${command.name}: ${err.message}\n\n${command.usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`kgents ${command.name}: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`kgents ${command.name}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kgents: ${String(err)}\n`);
    process.exitCode = 1;
  },
);
