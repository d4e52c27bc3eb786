// `tollgate run`: the inline gateway. Loads the configuration and the policy, binds the
// listeners and runs until SIGTERM or SIGINT (drain, flush events, exit). SIGHUP reloads the
// policy file; a policy that fails validation is not applied and the running one stays.

import { hostname } from 'node:os';
import { pino } from 'pino';
import { type PolicyReloadResult, reloadErrors } from '../admin/reload.js';
import type { AdminServer } from '../admin/server.js';
import { startAdminApi } from '../admin/start.js';
import { loadDefaultConfig } from '../config/default.js';
import type { PseudonymKeyFile } from '../config/key-file.js';
import {
  ConfigReadError,
  ConfigValidationError,
  type GatewayConfig,
  loadConfigFile,
} from '../config/load.js';
import { PSEUDONYM_KEY_ENV } from '../events/pseudonymize.js';
import { type EventSink, JsonLinesSink } from '../events/sink.js';
import { CidrSet } from '../policy/cidr.js';
import type { Policy } from '../policy/model.js';
import type { LookupFunction } from '../proxy/destination.js';
import { Gateway } from '../proxy/gateway.js';
import {
  loadPolicyOption,
  pseudonymizerWithKey,
  readKeyFileOption,
  UsageError,
} from './options.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './sniff.js';
import { VERSION } from './version.js';
import { logProcessWarnings, RANDOM_PSEUDONYM_KEY_WARNING } from './warnings.js';

export interface RunOptions {
  config?: string;
  /** --pseudonym-key-file: replaces the config's pseudonym_key_file. */
  pseudonymKeyFile?: string;
}

/** A started gateway and how to stop it; returned for tests and embedding. */
export interface RunningGateway {
  gateway: Gateway;
  /** The admin API, or null when the config has none or no token was found. */
  admin: AdminServer | null;
  /** Drains, flushes events and resolves when everything is closed. */
  stop(): Promise<void>;
  /** Reloads the policy file; returns false (and logs why) when the new policy is invalid. */
  reload(): boolean;
  /** Reloads the policy file like reload(), returning what runs now or the validation errors. */
  reloadPolicy(): PolicyReloadResult;
}

export interface StartOptions {
  config: GatewayConfig;
  /** A key that replaces the config's pseudonymKey, as --pseudonym-key-file does. */
  pseudonymKey?: PseudonymKeyFile;
  log?: pino.Logger;
  lookup?: LookupFunction;
  stdout?: NodeJS.WritableStream;
}

/** Starts a gateway from a loaded configuration. Throws UsageError for an invalid policy. */
export async function startGateway(options: StartOptions): Promise<RunningGateway> {
  const { config } = options;
  const log = options.log ?? pino({ name: 'tollgate' }, pino.destination(2));
  const policy = loadPolicyOption(config.policyPath ?? undefined);
  const protectedNetworks = protectedNetworksOf(config, policy);
  const pseudonymKey = options.pseudonymKey ?? config.pseudonymKey;
  const pseudonymizer = pseudonymizerWithKey(config.includePhi, pseudonymKey);
  if (pseudonymizer.randomKey && !config.includePhi) {
    log.warn(
      { code: RANDOM_PSEUDONYM_KEY_WARNING },
      `no pseudonym key configured (set pseudonym_key_file in the config, --pseudonym-key-file or ${PSEUDONYM_KEY_ENV}); using a random key, so patient pseudonyms will not match across restarts`,
    );
  }
  const sink: EventSink =
    config.events === '-'
      ? new JsonLinesSink((options.stdout ?? process.stdout) as never)
      : JsonLinesSink.toFile(config.events);
  const gateway = new Gateway({
    config,
    policy,
    protectedNetworks,
    sink,
    pseudonymizer,
    log,
    observer: { hostname: hostname(), version: VERSION },
    ...(options.lookup === undefined ? {} : { lookup: options.lookup }),
  });
  try {
    await gateway.start();
  } catch (error) {
    await sink.close();
    throw error;
  }
  log.info(
    {
      config: config.source,
      policy: policy.source,
      pseudonymKeyFile: pseudonymKey?.file,
      version: VERSION,
    },
    'gateway started',
  );

  const reloadPolicy = (): PolicyReloadResult => {
    try {
      const next = loadPolicyOption(config.policyPath ?? undefined);
      gateway.setPolicy(next);
      log.info({ policy: next.source, rules: next.rules.length }, 'policy reloaded');
      return { ok: true, source: next.source, name: next.name, rules: next.rules.length };
    } catch (error) {
      log.error(
        { err: error, policy: config.policyPath },
        'policy reload failed; the running policy stays',
      );
      return { ok: false, errors: reloadErrors(error) };
    }
  };

  let admin: AdminServer | null;
  try {
    admin = await startAdminApi({ config, gateway, version: VERSION, reload: reloadPolicy, log });
  } catch (error) {
    await gateway.drain();
    await sink.close();
    throw error;
  }

  let stopping: Promise<void> | null = null;
  return {
    gateway,
    admin,
    stop() {
      stopping ??= (async () => {
        await admin?.close();
        log.info({ drainTimeoutMs: config.limits.drainTimeoutMs }, 'draining');
        await gateway.drain();
        await sink.close();
        log.info({ stats: gateway.stats }, 'gateway stopped');
      })();
      return stopping;
    },
    reload() {
      return reloadPolicy().ok;
    },
    reloadPolicy,
  };
}

function protectedNetworksOf(config: GatewayConfig, policy: Policy): CidrSet {
  if (config.protectedNetworks !== null) return CidrSet.parse(config.protectedNetworks);
  if (policy.protectedNetworks !== null) return policy.protectedNetworks;
  throw new UsageError('no protected networks: set protected_networks in the config or the policy');
}

export async function runGateway(
  options: RunOptions,
  stderr: NodeJS.WritableStream,
): Promise<number> {
  let running: RunningGateway;
  try {
    const config =
      options.config === undefined ? loadDefaultConfig() : loadConfigFile(options.config);
    const log = pino({ name: 'tollgate' }, pino.destination(2));
    logProcessWarnings(log);
    running = await startGateway({
      config,
      log,
      ...(options.pseudonymKeyFile === undefined
        ? {}
        : { pseudonymKey: readKeyFileOption(options.pseudonymKeyFile) }),
    });
  } catch (error) {
    if (
      error instanceof ConfigValidationError ||
      error instanceof ConfigReadError ||
      error instanceof UsageError
    ) {
      stderr.write(`tollgate run: ${error.message}\n`);
      return EXIT_USAGE;
    }
    stderr.write(`tollgate run: ${(error as Error).message}\n`);
    return EXIT_FAILED;
  }

  const onHangup = () => running.reload();
  process.on('SIGHUP', onHangup);
  await new Promise<void>((resolve) => {
    const onStop = () => resolve();
    process.once('SIGTERM', onStop);
    process.once('SIGINT', onStop);
  });
  process.off('SIGHUP', onHangup);
  await running.stop();
  return EXIT_OK;
}
