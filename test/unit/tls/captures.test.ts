// The analyzer against openssl s_client and curl hellos, checked against the facts the
// recording script wrote and against tshark's dissection of the same packets.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createTlsAnalyzer } from '../../../src/protocols/tls/index.js';
import { FLOW, RecordingSink, type Segment, tcpStreams, tsharkFields } from '../http/support.js';

const pcap = new URL('../../fixtures/tls/client-hello.pcap', import.meta.url).pathname;
const facts = JSON.parse(
  readFileSync(new URL('../../fixtures/tls/client-hello.json', import.meta.url), 'utf8'),
) as {
  connections: Array<{ serverName: string; alpn: string[]; version: number; records?: number }>;
};

function analyze(segments: Segment[], split: number): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = createTlsAnalyzer(FLOW, sink);
  for (const [index, segment] of segments.entries()) {
    for (let offset = 0; offset < segment.bytes.length; offset += split) {
      analyzer.data(segment.side, segment.bytes.subarray(offset, offset + split), index);
    }
  }
  analyzer.end(segments.length);
  return sink;
}

describe('TLS capture', () => {
  it.each([1, 3, 100, 65536])('matches client-hello.json in %i-byte chunks', (split) => {
    const sinks = [...tcpStreams(pcap).values()].map((segments) => analyze(segments, split));
    expect(sinks.map((sink) => sink.ofKind('tls-client-hello'))).toEqual(
      facts.connections.map(({ serverName, alpn, version }) => [
        { kind: 'tls-client-hello', serverName, alpn, version },
      ]),
    );
    expect(sinks.flatMap((sink) => sink.ofKind('remote-name').map((name) => name.name))).toEqual(
      facts.connections.map((connection) => connection.serverName),
    );
    expect(sinks.flatMap((sink) => sink.anomalies)).toEqual([]);
  });

  it('contains a hello split over several records', () => {
    const recordLengths = tsharkFields(pcap, 'tls.handshake.type == 1', ['tls.record.length']);
    const counts = recordLengths.map(([lengths]) => (lengths ?? '').split(',').length);
    expect(counts).toEqual(facts.connections.map((connection) => connection.records ?? 1));
  });

  it('agrees with tshark', () => {
    const fromTshark = tsharkFields(pcap, 'tls.handshake.type == 1', [
      'tls.handshake.extensions_server_name',
      'tls.handshake.extensions_alpn_str',
    ]);
    const ours = [...tcpStreams(pcap).values()]
      .flatMap((segments) => analyze(segments, 65536).ofKind('tls-client-hello'))
      .map((hello) => [hello.serverName ?? '', hello.alpn.join(',')]);
    expect(ours).toEqual(fromTshark);
  });
});
