// The analyzer against captures of curl and rclone, checked against the facts the recording
// script wrote and against tshark's own dissection of the same packets.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createHttpAnalyzer } from '../../../src/protocols/http/index.js';
import { FLOW, RecordingSink, type Segment, tcpStreams, tsharkFields } from './support.js';

const fixtures = new URL('../../fixtures/http/', import.meta.url).pathname;

function analyze(segments: Segment[], split = 0): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = createHttpAnalyzer(FLOW, sink);
  for (const [index, segment] of segments.entries()) {
    if (split > 0) {
      for (let offset = 0; offset < segment.bytes.length; offset += split) {
        analyzer.data(segment.side, segment.bytes.subarray(offset, offset + split), index);
      }
    } else {
      analyzer.data(segment.side, segment.bytes, index);
    }
  }
  analyzer.end(segments.length);
  return sink;
}

function analyzeCapture(pcap: string, split = 0): RecordingSink[] {
  return [...tcpStreams(pcap).values()].map((segments) => analyze(segments, split));
}

describe('HTTP captures', () => {
  it('matches curl.json', () => {
    const expected = JSON.parse(readFileSync(`${fixtures}curl.json`, 'utf8')) as {
      connections: number;
      requests: Array<Record<string, unknown>>;
    };
    const sinks = analyzeCapture(`${fixtures}curl.pcap`);
    expect(sinks).toHaveLength(expected.connections);
    const exchanges = sinks.flatMap((sink) => sink.ofKind('http-request'));
    expect(exchanges).toHaveLength(expected.requests.length);
    for (const [index, facts] of expected.requests.entries()) {
      expect(exchanges[index]).toMatchObject({ ...facts, incomplete: false });
    }
    expect(sinks.flatMap((sink) => sink.anomalies)).toEqual([]);
  });

  it('names the s3.amazonaws.com upload', () => {
    const names = analyzeCapture(`${fixtures}curl.pcap`).flatMap((sink) =>
      sink.ofKind('remote-name'),
    );
    expect(names.map((name) => name.name)).toContain('s3.amazonaws.com');
  });

  it('matches rclone.json', () => {
    const expected = JSON.parse(readFileSync(`${fixtures}rclone.json`, 'utf8')) as {
      userAgentPrefix: string;
      uploads: Array<{ method: string; target: string; requestBodyBytes: number }>;
    };
    const exchanges = analyzeCapture(`${fixtures}rclone.pcap`).flatMap((sink) =>
      sink.ofKind('http-request'),
    );
    for (const exchange of exchanges) {
      expect(exchange.userAgent?.startsWith(expected.userAgentPrefix)).toBe(true);
      expect(exchange.incomplete).toBe(false);
    }
    for (const upload of expected.uploads) {
      expect(exchanges).toContainEqual(expect.objectContaining(upload));
    }
  });

  it.each(['curl.pcap', 'rclone.pcap'])('agrees with tshark on %s', (name) => {
    const pcap = `${fixtures}${name}`;
    const fromTshark = tsharkFields(pcap, 'http.request', [
      'http.request.method',
      'http.host',
      'http.user_agent',
      'http.request.uri',
    ]);
    const ours = analyzeCapture(pcap)
      .flatMap((sink) => sink.ofKind('http-request'))
      .map((exchange) => [
        exchange.method,
        exchange.host ?? '',
        exchange.userAgent ?? '',
        exchange.target,
      ]);
    expect(ours).toEqual(fromTshark);
  });

  it.each([1, 7, 1000])('gives the same result in %i-byte chunks', (split) => {
    for (const name of ['curl.pcap', 'rclone.pcap']) {
      const whole = analyzeCapture(`${fixtures}${name}`).map((sink) => sink.observations);
      const pieces = analyzeCapture(`${fixtures}${name}`, split).map((sink) => sink.observations);
      expect(pieces).toEqual(whole);
    }
  });
});
