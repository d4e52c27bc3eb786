// tollgate sniff on SMB captures recorded with smbd and smbclient (scripts/fixtures/smb/record.sh):
// file accesses, sessions, pseudonymized paths and the bulk-copy rule with user, share and
// time-of-day conditions.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runSniff, type SniffOptions } from '../../src/cli/sniff.js';
import { byAction, type Event } from './support/events.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'smb');
const facts = JSON.parse(readFileSync(join(fixtures, 'facts.json'), 'utf8'));

async function sniff(
  capture: string,
  options: Partial<SniffOptions> = {},
): Promise<{ status: number; events: Event[]; summary: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-smb-'));
  const events = join(dir, 'events.jsonl');
  const stderr = new PassThrough();
  let summary = '';
  stderr.on('data', (chunk) => {
    summary += chunk;
  });
  const status = await runSniff(
    { input: join(fixtures, capture), protected: '198.51.100.0/24', events, ...options },
    new PassThrough(),
    stderr,
  );
  const lines = readFileSync(events, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  return { status, events: lines.map((line) => JSON.parse(line)), summary };
}

function policyFile(rules: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tollgate-policy-')), 'policy.yaml');
  writeFileSync(path, `version: 1\nname: smb test\nrules:\n${rules}`);
  return path;
}

describe('sniff on SMB captures', () => {
  it('reports each file read with user, share and byte counts', async () => {
    const { status, events } = await sniff('smb2-get.pcap');
    expect(status).toBe(0);
    const reads = byAction(events, 'smb-file-access').filter(
      (event) => event.tollgate.smb.file.bytes_read > 0,
    );
    const expected = facts.captures['smb2-get.pcap'].read
      .map((path: string) => facts.files[path])
      .sort();
    expect(reads.map((event) => event.tollgate.smb.file.bytes_read).sort()).toEqual(expected);
    for (const event of reads) {
      expect(event.user.name).toBe(facts.user);
      expect(event.tollgate.smb.file.share).toBe(facts.share);
      expect(event.tollgate.smb.file.read_fully).toBe(true);
      expect(event.tollgate.remote.ip).toBe(facts.client);
    }
    const dicom = reads.find((event) => event.file.extension === 'dcm');
    expect(dicom?.tollgate.smb.file.looks_like_dicom).toBe(true);
  });

  it('keeps file paths out of events unless --include-phi is given', async () => {
    const hidden = await sniff('smb2-get.pcap');
    const text = JSON.stringify(hidden.events);
    expect(text).not.toContain('MUSTERMANN');
    expect(byAction(hidden.events, 'smb-file-access')[0]!.file.path).toMatch(/^hmac-sha256:/);

    const clear = await sniff('smb2-get.pcap', { includePhi: true });
    expect(JSON.stringify(clear.events)).toContain('MUSTERMANN_ERIKA_19640812_report.pdf');
  });

  it('meters the file bytes that left as egress', async () => {
    const { events } = await sniff('smb2-get.pcap');
    const [meter] = byAction(events, 'egress-meter');
    const fileBytes = facts.captures['smb2-get.pcap'].read.reduce(
      (sum: number, path: string) => sum + facts.files[path],
      0,
    );
    expect(meter!.tollgate.remote.ip).toBe(facts.client);
    expect(meter!.tollgate.egress.bytes).toBeGreaterThan(fileBytes);
    expect(meter!.tollgate.files).toBe(2);
  });

  it('summarizes signed and encrypted sessions', async () => {
    const signed = await sniff('smb3-signed-mget.pcap');
    const session = byAction(signed.events, 'smb-session').find(
      (event) => event.tollgate.smb.session.files_opened > 0,
    );
    expect(session?.tollgate.smb.session.signed).toBe(true);
    expect(session?.tollgate.smb.session.dialect).toBe('3.1.1');

    const encrypted = await sniff('smb3-encrypted.pcap');
    const sessions = byAction(encrypted.events, 'smb-session');
    expect(sessions.some((event) => event.tollgate.smb.session.encrypted)).toBe(true);
    expect(byAction(encrypted.events, 'network-flow')[0]!.tollgate.egress.bytes).toBeGreaterThan(0);
  });

  it('raises bulk-file-copy for a vendor account reading files off hours', async () => {
    const policy = policyFile(`  - id: vendor-bulk-copy
    name: Vendor copied more than 3 files
    kind: bulk-copy
    action: alert
    files: 3
    per: user
    window: hour
    when:
      users: [${facts.user}]
      shares: [exports]
      time: { from: "18:00", to: "07:00", timezone: UTC }
`);
    const { events } = await sniff('smb3-signed-mget.pcap', { policy });
    const alerts = byAction(events, 'bulk-file-copy');
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.rule.id).toBe('vendor-bulk-copy');
    expect(alerts[0]!.tollgate.meter.files).toBe(4);
    expect(alerts[0]!.user.name.toLowerCase()).toContain(facts.user);
  });

  it('does not raise bulk-file-copy for other users or inside business hours', async () => {
    const otherUser = policyFile(`  - id: r
    name: other user
    kind: bulk-copy
    files: 3
    when: { users: [someone-else] }
`);
    expect(
      byAction(
        (await sniff('smb3-signed-mget.pcap', { policy: otherUser })).events,
        'bulk-file-copy',
      ),
    ).toHaveLength(0);

    const businessHours = policyFile(`  - id: r
    name: off hours only
    kind: bulk-copy
    files: 3
    when: { time: { from: "08:00", to: "08:01", timezone: UTC } }
`);
    expect(
      byAction(
        (await sniff('smb3-signed-mget.pcap', { policy: businessHours })).events,
        'bulk-file-copy',
      ),
    ).toHaveLength(0);
  });

  it('raises bulk-file-copy on file bytes alone', async () => {
    const policy = policyFile(`  - id: bytes
    name: more than 1 MB of files
    kind: bulk-copy
    threshold: 1MB
`);
    const { events } = await sniff('smb2-get.pcap', { policy });
    const [alert] = byAction(events, 'bulk-file-copy');
    expect(alert?.tollgate.meter.measure).toBe('bytes');
    expect(alert?.tollgate.meter.bytes).toBeGreaterThan(1_000_000);
  });
});
