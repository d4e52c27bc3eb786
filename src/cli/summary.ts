// The human summary `sniff` writes to standard error when it ends.

import type { DecodeStats } from '../capture/decode.js';
import type { LiveCaptureSummary } from '../capture/live.js';
import type { CaptureStats } from '../capture/reader.js';
import type { Engine, RemoteHourRecord } from '../engine/engine.js';
import type { TcpTracker } from '../engine/tcp-tracker.js';

const TOP_REMOTES = 10;

export interface SummaryInput {
  engine: Engine;
  tcp: TcpTracker;
  captureStats: CaptureStats;
  decodeStats: DecodeStats;
  seconds: number;
  live: LiveCaptureSummary | null;
  input: string;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

function hourText(ts: number): string {
  return `${new Date(ts).toISOString().slice(0, 13).replace('T', ' ')}:00`;
}

function remoteText(ip: string, domain: string | undefined): string {
  return domain === undefined ? ip : `${ip} (${domain})`;
}

export function writeSummary(out: NodeJS.WritableStream, input: SummaryInput): void {
  const { engine, captureStats } = input;
  const stats = engine.stats;
  const lines: string[] = [];

  const rate = captureStats.bytes / 1e6 / Math.max(input.seconds, 1e-6);
  lines.push(
    `tollgate sniff: ${input.input}: ${captureStats.packets} packets, ${formatBytes(captureStats.bytes)} ` +
      `in ${input.seconds.toFixed(2)} s (${rate.toFixed(0)} MB/s)`,
  );
  lines.push(
    `flows: ${stats.flows.egress} crossing the protected boundary, ${stats.flows.internal} internal, ` +
      `${stats.flows.unrelated} unrelated; egress ${formatBytes(stats.bytes.egress)}` +
      (stats.bytes.egressMissing > 0
        ? ` (plus about ${formatBytes(stats.bytes.egressMissing)} not captured)`
        : ''),
  );

  lines.push('', 'Top remotes by egress bytes per UTC hour:');
  const top = topHours(engine.hourRecords);
  if (top.length === 0) lines.push('  (no egress)');
  else {
    lines.push(
      `  ${'hour (UTC)'.padEnd(17)} ${'remote'.padEnd(44)} ${'egress'.padStart(10)} ${'DICOM'.padStart(7)}`,
    );
    for (const record of top) {
      lines.push(
        `  ${hourText(record.totals.start).padEnd(17)} ${remoteText(record.remoteIp, record.remoteDomain).padEnd(44)} ` +
          `${formatBytes(record.totals.bytes).padStart(10)} ${String(record.totals.instances).padStart(7)}`,
      );
    }
  }

  lines.push('', 'Alerts by rule:');
  if (stats.alerts.size === 0) lines.push('  (none)');
  for (const [ruleId, { name, count }] of stats.alerts)
    lines.push(`  ${String(count).padStart(5)}  ${ruleId}: ${name}`);
  if (engine.alerts.length > 0) {
    lines.push('', 'Alerts:');
    for (const alert of engine.alerts) {
      const user = alert.user === undefined ? '' : ` user ${alert.user}`;
      lines.push(
        `  ${new Date(alert.ts).toISOString()} ${alert.verdict.padEnd(11)} ${alert.action} ` +
          `${remoteText(alert.remoteIp, alert.remoteDomain)}${user}`,
      );
    }
    const total = [...stats.alerts.values()].reduce((sum, entry) => sum + entry.count, 0);
    if (total > engine.alerts.length)
      lines.push(`  ... ${total - engine.alerts.length} more in the events`);
  }

  const warnings = warningLines(input);
  if (warnings.length > 0) lines.push('', 'Warnings:', ...warnings.map((line) => `  ${line}`));
  out.write(`${lines.join('\n')}\n`);
}

function topHours(records: readonly RemoteHourRecord[]): RemoteHourRecord[] {
  return [...records].sort((a, b) => b.totals.bytes - a.totals.bytes).slice(0, TOP_REMOTES);
}

function warningLines(input: SummaryInput): string[] {
  const { captureStats, decodeStats, tcp, engine } = input;
  const lines: string[] = [];
  const flows = engine.stats.flows;
  if (flows.egress === 0 && flows.internal + flows.unrelated > 0) {
    lines.push(
      'no flow crossed the protected networks: name the inside networks with --protected CIDR,...',
    );
  }
  if (captureStats.truncatedRecords > 0)
    lines.push(`${captureStats.truncatedRecords} capture records cut short (truncated file)`);
  if (captureStats.corruptRecords > 0)
    lines.push(`${captureStats.corruptRecords} corrupt capture records skipped`);
  for (const [code, count] of captureStats.warnings) lines.push(`capture: ${code} x${count}`);
  for (const [reason, count] of decodeStats.malformed)
    lines.push(`malformed packets: ${reason} x${count}`);
  for (const [linkType, count] of decodeStats.unsupportedLinkTypes)
    lines.push(`unsupported link type ${linkType}: ${count} frames`);
  if (decodeStats.fragmentsDropped > 0)
    lines.push(`${decodeStats.fragmentsDropped} IP fragments dropped`);
  const counters = tcp.counters;
  if (counters.evictedConnections > 0)
    lines.push(`${counters.evictedConnections} connections evicted (flow table full)`);
  if (counters.pendingLimitHits > 0)
    lines.push(`${counters.pendingLimitHits} times the out-of-order limit forced a gap`);
  if (counters.gapBytes > 0)
    lines.push(`${formatBytes(counters.gapBytes)} of TCP payload not captured (gaps)`);
  if (counters.midStreamConnections > 0)
    lines.push(`${counters.midStreamConnections} connections picked up mid-stream`);
  if (engine.meterEvictions > 0)
    lines.push(`${engine.meterEvictions} meter keys evicted (meter store full)`);
  for (const [name, count] of engine.stats.anomalies) lines.push(`anomaly ${name} x${count}`);
  if (input.live !== null && input.live.droppedByKernel > 0)
    lines.push(`tcpdump: ${input.live.droppedByKernel} packets dropped by kernel`);
  return lines;
}
