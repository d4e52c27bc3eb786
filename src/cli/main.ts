#!/usr/bin/env node
// The tollgate command line.

import { Command, CommanderError } from 'commander';
import { runConfigCheck } from './config-check.js';
import { runPolicyCheck } from './policy-check.js';
import { type RunOptions, runGateway } from './run.js';
import { EXIT_FAILED, EXIT_USAGE, runSniff, type SniffOptions } from './sniff.js';
import { VERSION } from './version.js';
import { handleProcessWarning } from './warnings.js';

// Node's default handler prints a stack hint after each warning; one line per warning is enough.
process.removeAllListeners('warning');
process.on('warning', handleProcessWarning);

// A reader that closes the pipe early (`tollgate --help | head -1`) ends the process quietly, with
// the status a shell reports for a command killed by SIGPIPE, instead of an unhandled error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(EXIT_BROKEN_PIPE);
});

/** 128 + SIGPIPE (13). */
const EXIT_BROKEN_PIPE = 141;

const program = new Command();
// Usage errors exit 2 as documented, not commander's default 1; subcommands inherit this.
program.exitOverride();
program
  .name('tollgate')
  .description('Egress gateway and data-loss monitor for hospital PACS and file-server networks')
  .version(VERSION);

program
  .command('sniff')
  .description(
    'Watch a span port or read a capture: meter egress per remote, apply the policy, write events.\n' +
      'With no FILE and no --interface, reads the bundled sample capture.',
  )
  .argument('[FILE]', "pcap or pcapng capture file, '-' for standard input")
  .option('-i, --interface <IFACE>', 'capture live from this interface (runs tcpdump)')
  .option('--bpf <FILTER>', 'BPF capture filter for --interface')
  .option('-p, --policy <FILE>', 'policy YAML file (default: the embedded default policy)')
  .option('--protected <CIDRS>', 'protected networks, comma-separated CIDRs (overrides the policy)')
  .option(
    '-e, --events <FILE>',
    "write events as JSON lines to FILE ('-' or unset: standard output)",
  )
  .option('--include-phi', 'write patient identifiers in clear instead of keyed hashes')
  .option(
    '--pseudonym-key-file <FILE>',
    'key for the hashes of patient identifiers (default: $TOLLGATE_PSEUDONYM_KEY)',
  )
  .option('--no-summary', 'do not print the summary on standard error')
  .option(
    '--max-flows <N>',
    'TCP connections tracked at once before the least recently used is evicted',
  )
  .option('--idle-timeout <SECONDS>', 'end a connection after this many seconds without packets')
  .addHelpText(
    'after',
    '\nExit status: 0 done; 1 the input could not be read; 2 invalid option or policy;\n' +
      '3 done with warnings: damaged capture records, bytes missing from the capture, or\n' +
      'malformed traffic (the summary lists them).',
  )
  .action(async (file: string | undefined, options: SniffOptions) => {
    const sniffOptions: SniffOptions = { ...options };
    if (file !== undefined) sniffOptions.input = file;
    process.exitCode = await runSniff(sniffOptions, process.stdout, process.stderr);
  });

const policy = program.command('policy').description('Work with policy files');
policy
  .command('check')
  .description('Validate a policy file and the lists it names; exit 1 when it is invalid')
  .argument('<FILE>', 'policy YAML file')
  .action((file: string) => {
    process.exitCode = runPolicyCheck(file, process.stdout, process.stderr);
  });

program
  .command('run')
  .description(
    'Run the inline gateway: relays, HTTP proxy and SOCKS5 that meter, inspect and block.\n' +
      'With no --config, serves an HTTP proxy on 127.0.0.1:3128 and SOCKS5 on 127.0.0.1:1080.\n' +
      'SIGTERM drains open connections and flushes events; SIGHUP reloads the policy.',
  )
  .option('-c, --config <FILE>', 'gateway configuration YAML file (default: the embedded config)')
  .option(
    '--pseudonym-key-file <FILE>',
    'key for the hashes of patient identifiers; replaces pseudonym_key_file in the config\n' +
      "(default: the config's pseudonym_key_file, else $TOLLGATE_PSEUDONYM_KEY)",
  )
  .addHelpText(
    'after',
    '\nExit status: 0 stopped by a signal; 1 a listener failed; 2 invalid config or policy.',
  )
  .action(async (options: RunOptions) => {
    process.exitCode = await runGateway(options, process.stderr);
  });

const config = program.command('config').description('Work with gateway configuration files');
config
  .command('check')
  .description('Validate a gateway configuration and the policy it names; exit 1 when invalid')
  .argument('<FILE>', 'configuration YAML file')
  .action((file: string) => {
    process.exitCode = runConfigCheck(file, process.stdout, process.stderr);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // commander has printed the message (or the help or version) already.
    process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
    return;
  }
  process.stderr.write(`tollgate: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = EXIT_FAILED;
});
