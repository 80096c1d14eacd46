import type { Command } from '../command.js';
import { backupCommand } from './backup.js';
import { busCommand } from './bus.js';
import { chaosCommand } from './chaos.js';
import { exporterCommand } from './exporter.js';
import { keysCommand } from './keys.js';
import { loadCommand } from './load.js';
import { restoreCommand } from './restore.js';
import { rolloutCommand } from './rollout.js';
import { serveCommand } from './serve.js';
import { soakCommand } from './soak.js';
import { stackCommand } from './stack.js';
import { tenantsCommand } from './tenants.js';

/** Every subcommand, in help order. */
export const commands: readonly Command[] = [serveCommand, keysCommand, tenantsCommand, busCommand, exporterCommand, loadCommand, soakCommand, stackCommand, chaosCommand, rolloutCommand, backupCommand, restoreCommand];
