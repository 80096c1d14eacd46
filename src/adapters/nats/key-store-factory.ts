import type { Config } from '../../config/load.js';
import { ConfigError } from '../../config/load.js';
import type { KeyStore } from '../../domain/tenancy/types.js';
import { FileKeyStore } from '../file/key-store.js';
import { connectNats, type NatsConnection } from './connection.js';
import { NatsKvKeyStore } from './key-store.js';
import type { StoreLogger } from './records.js';

export type KeyStoreConfig = Pick<Config, 'KEY_STORE' | 'DATA_DIR' | 'NATS_REPLICAS'>;

export interface OpenKeyStoreOptions {
  /** The process's NATS connection, when it has one. */
  readonly natsConnection?: NatsConnection;
  readonly logger?: StoreLogger;
  readonly startTimeoutMs?: number;
}

/**
 * Picks the store by KEY_STORE (`auto`: NATS KV when a connection is given, else the file under
 * DATA_DIR), starts it and returns it. Throws a ConfigError for KEY_STORE=nats without a connection.
 */
export async function openKeyStore(config: KeyStoreConfig, options: OpenKeyStoreOptions = {}): Promise<KeyStore> {
  const store = createKeyStore(config, options);
  await store.start();
  return store;
}

/** Like openKeyStore, without starting it. */
export function createKeyStore(config: KeyStoreConfig, options: OpenKeyStoreOptions = {}): KeyStore {
  const useNats = config.KEY_STORE === 'nats' || (config.KEY_STORE === 'auto' && options.natsConnection !== undefined);
  if (!useNats) {
    return new FileKeyStore({ dir: config.DATA_DIR, ...(options.logger ? { logger: options.logger } : {}) });
  }
  if (!options.natsConnection) {
    throw new ConfigError(['KEY_STORE: "nats" needs a NATS connection; set NATS_URLS (or use KEY_STORE=file)']);
  }
  return new NatsKvKeyStore(options.natsConnection, {
    replicas: config.NATS_REPLICAS,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.startTimeoutMs !== undefined ? { startTimeoutMs: options.startTimeoutMs } : {}),
  });
}

export interface ConfiguredKeyStore {
  readonly store: KeyStore;
  /** Where the data lives, for messages: the NATS servers or the file path. */
  readonly location: string;
  /** Closes the store and, if this opened one, the NATS connection. */
  close(): Promise<void>;
}

/**
 * For tools (the CLI): connects to NATS_URLS when the configuration asks for NATS, else opens the
 * file store. `notice` receives one line when the file store is used because NATS_URLS is empty.
 */
export async function openConfiguredKeyStore(
  config: KeyStoreConfig & Pick<Config, 'NATS_URLS'>,
  options: { readonly clientName: string; readonly notice?: (line: string) => void; readonly logger?: StoreLogger; readonly connectTimeoutMs?: number },
): Promise<ConfiguredKeyStore> {
  const wantsNats = config.KEY_STORE === 'nats' || (config.KEY_STORE === 'auto' && config.NATS_URLS.length > 0);
  if (!wantsNats) {
    const file = new FileKeyStore({ dir: config.DATA_DIR, ...(options.logger ? { logger: options.logger } : {}) });
    if (config.KEY_STORE === 'auto') {
      options.notice?.(`NATS_URLS is empty: using the file key store ${file.path} (single instance only)`);
    }
    await file.start();
    return { store: file, location: file.path, close: () => file.close() };
  }
  if (config.NATS_URLS.length === 0) {
    throw new ConfigError(['KEY_STORE: "nats" needs NATS_URLS (or use KEY_STORE=file)']);
  }
  const connection = await connectNats(config.NATS_URLS, { name: options.clientName, timeoutMs: options.connectTimeoutMs ?? 5000 });
  try {
    const store = await openKeyStore(config, {
      natsConnection: connection,
      ...(options.logger ? { logger: options.logger } : {}),
      startTimeoutMs: 10_000,
    });
    return {
      store,
      location: `NATS KV (${connection.urls.length} server${connection.urls.length === 1 ? '' : 's'})`,
      close: async () => {
        await store.close();
        await connection.close();
      },
    };
  } catch (err) {
    await connection.close();
    throw err;
  }
}
