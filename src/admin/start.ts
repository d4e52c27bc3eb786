// Starting the admin API from the gateway configuration, as `tollgate run` does.

import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/load.js';
import type { Gateway } from '../proxy/gateway.js';
import type { PolicyReloadResult } from './reload.js';
import { type AdminLimits, type AdminServer, startAdminServer } from './server.js';
import { loadAdminToken } from './token.js';

export interface AdminStartOptions {
  config: GatewayConfig;
  gateway: Gateway;
  version: string;
  reload(): PolicyReloadResult;
  log: Logger;
  /** Environment TOLLGATE_ADMIN_TOKEN is read from when the config names no token file. */
  env?: NodeJS.ProcessEnv;
  limits?: Partial<AdminLimits>;
}

/**
 * Starts the admin API when the config has an `admin` section. Returns null, after one log
 * line saying why, when there is no usable token: the gateway then runs without the API.
 * Rejects when the address cannot be bound.
 */
export async function startAdminApi(options: AdminStartOptions): Promise<AdminServer | null> {
  const { config, log } = options;
  if (config.admin === null) return null;

  const token = loadAdminToken(config.adminTokenFile, options.env ?? process.env);
  if (!token.ok) {
    log.warn(
      { host: config.admin.host, port: config.admin.port },
      `admin API not started: ${token.reason}`,
    );
    return null;
  }

  return startAdminServer({
    listen: config.admin,
    allowNonLoopback: config.adminAllowNonLoopback,
    token: token.token,
    gateway: options.gateway,
    listeners: config.listeners,
    version: options.version,
    reload: options.reload,
    log: log.child({ component: 'admin' }),
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  });
}
