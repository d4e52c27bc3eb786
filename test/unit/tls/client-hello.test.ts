import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createTlsAnalyzer,
  parseClientHello,
  tlsProtocol,
} from '../../../src/protocols/tls/index.js';
import { cut, FLOW, hex, RecordingSink, splitOffsets } from '../http/support.js';

// A TLS 1.3 ClientHello handshake message (RFC 8446 section 4.1.2), 116 bytes of body.
const HELLO = hex(`
  01 000074                      # Handshake: client_hello, length 116
  0303                           # legacy_version TLS 1.2
  ${'11'.repeat(32)}             # random
  00                             # legacy_session_id: empty
  0006 1301 1302 0a0a            # cipher_suites: 3 suites, one GREASE
  01 00                          # legacy_compression_methods: null
  0045                           # extensions: 69 bytes
    0000 001c                    # server_name, 28 bytes
      001a                       # server_name_list, 26 bytes
        00 0017                  # host_name, 23 bytes
        4275636b65742e53332e616d617a6f6e6177732e636f6d  # "Bucket.S3.amazonaws.com"
    0010 000e                    # application_layer_protocol_negotiation, 14 bytes
      000c                       # protocol_name_list, 12 bytes
        02 6832                  # "h2"
        08 687474702f312e31      # "http/1.1"
    002b 0007                    # supported_versions, 7 bytes
      06 7a7a 0304 0303          # GREASE, TLS 1.3, TLS 1.2
    000a 0004 0002 001d          # supported_groups: x25519
`);

/** Wraps handshake bytes in TLS records of at most `fragment` bytes each. */
function records(message: Buffer, fragment: number): Buffer {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < message.length; offset += fragment) {
    const body = message.subarray(offset, offset + fragment);
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    header.writeUInt16BE(body.length, 3);
    parts.push(header, body);
  }
  return Buffer.concat(parts);
}

function analyze(parts: Buffer[], limits = {}): RecordingSink {
  const sink = new RecordingSink();
  const analyzer = createTlsAnalyzer(FLOW, sink, limits);
  for (const [index, part] of parts.entries()) {
    const scratch = Buffer.from(part);
    analyzer.data(0, scratch, index);
    scratch.fill(0xee);
  }
  analyzer.end(parts.length);
  return sink;
}

/** Copies HELLO and replaces the 16-bit value at `offset`. */
function withU16(offset: number, value: number): Buffer {
  const copy = Buffer.from(HELLO);
  copy.writeUInt16BE(value, offset);
  return copy;
}

describe('parseClientHello', () => {
  it('decodes the annotated hello', () => {
    expect(parseClientHello(HELLO)).toEqual({
      ok: true,
      legacyVersion: 0x0303,
      version: 0x0304,
      sessionIdLength: 0,
      cipherSuites: [0x1301, 0x1302, 0x0a0a],
      compressionMethods: [0],
      extensionTypes: [0x0000, 0x0010, 0x002b, 0x000a],
      serverName: 'bucket.s3.amazonaws.com',
      alpn: ['h2', 'http/1.1'],
      supportedVersions: [0x7a7a, 0x0304, 0x0303],
    });
  });

  it('decodes the hello from split records', () => {
    expect(parseClientHello(records(HELLO, 50))).toEqual(parseClientHello(HELLO));
  });

  it('uses legacy_version without supported_versions', () => {
    const hello = hex(`
      01 000029  0301 ${'00'.repeat(32)}  00  0002 002f  01 00  # TLS 1.0, no extensions
    `);
    expect(parseClientHello(hello)).toMatchObject({ ok: true, version: 0x0301, alpn: [] });
  });

  // Offsets into HELLO of each length field, and the field the error must name.
  it.each([
    ['Handshake.length', 1, 'tls.incomplete_client_hello', 'u24'],
    ['cipher_suites', 39, 'tls.bad_client_hello', 0x0007],
    ['cipher_suites', 39, 'tls.bad_client_hello', 0x4000],
    ['extensions', 49, 'tls.bad_client_hello', 0x0046],
    ['extension_data', 53, 'tls.bad_client_hello', 0x0050],
    ['server_name extension', 53, 'tls.bad_client_hello', 0x001d],
    ['server_name_list', 55, 'tls.bad_client_hello', 0x001b],
    ['HostName', 58, 'tls.bad_client_hello', 0x0018],
    ['protocol_name_list', 87, 'tls.bad_client_hello', 0x000d],
  ] as const)('names the lying length of %s', (field, offset, anomaly, value) => {
    let input: Buffer;
    if (value === 'u24') {
      input = Buffer.from(HELLO);
      input.writeUIntBE(0x000075, offset, 3);
    } else {
      input = withU16(offset, value);
    }
    const result = parseClientHello(input);
    expect(result).toMatchObject({ ok: false, anomaly, field });
  });

  it('rejects a session id over 32 bytes', () => {
    const input = Buffer.from(HELLO);
    input[38] = 33;
    expect(parseClientHello(input)).toMatchObject({ ok: false, field: 'legacy_session_id' });
  });

  it('rejects a duplicated extension', () => {
    const input = withU16(112, 0x0010); // supported_groups retyped as a second ALPN
    expect(parseClientHello(input)).toMatchObject({ ok: false, field: 'Extension.extension_type' });
  });

  it('rejects a ServerHello', () => {
    const input = Buffer.from(HELLO);
    input[0] = 2;
    expect(parseClientHello(input)).toMatchObject({ ok: false, anomaly: 'tls.not_client_hello' });
  });

  it('keeps payload bytes out of error messages', () => {
    const input = withU16(58, 0x0018);
    const result = parseClientHello(input);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).not.toMatch(/amazonaws/i);
  });

  it('never throws on mutated or random input', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ at: fc.nat(HELLO.length - 1), byte: fc.integer({ min: 0, max: 255 }) }),
          { maxLength: 6 },
        ),
        fc.nat(HELLO.length),
        (mutations, length) => {
          const input = Buffer.from(HELLO.subarray(0, length));
          for (const { at, byte } of mutations) if (at < input.length) input[at] = byte;
          const result = parseClientHello(input);
          expect(typeof result.ok).toBe('boolean');
          expect(parseClientHello(records(input, 40)).ok).toBe(result.ok);
        },
      ),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(typeof parseClientHello(Buffer.from(bytes)).ok).toBe('boolean');
      }),
    );
  });
});

describe('TLS analyzer', () => {
  const expected = [
    {
      kind: 'tls-client-hello',
      serverName: 'bucket.s3.amazonaws.com',
      alpn: ['h2', 'http/1.1'],
      version: 0x0304,
    },
    { kind: 'remote-name', name: 'bucket.s3.amazonaws.com', source: 'sni' },
  ];

  it('reports the hello and the SNI', () => {
    const sink = analyze([records(HELLO, 16384)]);
    expect(sink.observations).toEqual(expected);
    expect(sink.anomalies).toEqual([]);
  });

  it.each([1, 7, 50, 120])('reassembles a hello split over %i-byte records', (fragment) => {
    const wire = records(HELLO, fragment);
    for (const offsets of splitOffsets(wire.length, 1000)) {
      const sink = analyze(cut(wire, offsets));
      expect(sink.observations).toEqual(expected);
    }
  });

  it('counts only after the hello', () => {
    const wire = Buffer.concat([
      records(HELLO, 16384),
      Buffer.from('17030300ff', 'hex'),
      Buffer.alloc(300),
    ]);
    const sink = analyze([wire]);
    expect(sink.observations).toEqual(expected);
    expect(sink.anomalies).toEqual([]);
  });

  it('rejects a hello over the lowered limit', () => {
    const sink = analyze([records(HELLO, 16384)], { maxClientHelloBytes: 100 });
    expect(sink.anomalies).toEqual([
      { name: 'tls.client_hello_too_large', details: { length: 116, limit: 100 } },
    ]);
    expect(sink.observations).toEqual([]);
  });

  it('accepts the hello at exactly the limit', () => {
    expect(analyze([records(HELLO, 16384)], { maxClientHelloBytes: 116 }).observations).toEqual(
      expected,
    );
  });

  it('rejects a record over 2^14 bytes', () => {
    const sink = analyze([hex('16 0303 4001'), Buffer.alloc(100)]);
    expect(sink.anomalies).toEqual([
      { name: 'tls.bad_record', details: { length: 16385, limit: 16384 } },
    ]);
  });

  it('reports a lying length inside the hello', () => {
    const sink = analyze([records(withU16(55, 0x001b), 16384)]);
    expect(sink.anomalyNames).toEqual(['tls.bad_client_hello']);
    expect(sink.anomalies[0]?.details).toMatchObject({ field: 'server_name_list' });
  });

  it('reports an SSL 2.0 compatible hello', () => {
    const sink = analyze([hex('802e 01 0301 0015 0000 0010 ...'.replace('...', '00'.repeat(30)))]);
    expect(sink.anomalies).toEqual([
      { name: 'tls.sslv2_client_hello', details: { version: 0x0301 } },
    ]);
  });

  it('reports a truncated hello at end', () => {
    const wire = records(HELLO, 16384);
    const sink = analyze([wire.subarray(0, 60)]);
    expect(sink.anomalies).toEqual([
      { name: 'tls.incomplete_client_hello', details: { received: 55, expected: 120 } },
    ]);
  });

  it('reports a gap before the hello ends', () => {
    const sink = new RecordingSink();
    const analyzer = createTlsAnalyzer(FLOW, sink);
    analyzer.data(0, records(HELLO, 16384).subarray(0, 20), 1);
    analyzer.gap(0, 40, 2);
    analyzer.end(3);
    expect(sink.anomalies).toEqual([{ name: 'tls.gap', details: { bytes: 40 } }]);
  });

  it('never throws on arbitrary chunks', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const prefix = records(HELLO, 30).subarray(0, 12);
        analyze([prefix, ...chunks.map((chunk) => Buffer.from(chunk))]);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('tlsProtocol.probe', () => {
  it.each([
    ['TLS 1.0 record with ClientHello', '160301020001', true],
    ['TLS 1.2 record version', '160303020001', true],
    ['prefix only', '1603', undefined],
    ['record version 3.5', '160305020001', false],
    ['ServerHello', '160303020002', false],
    ['application data', '170303020001', false],
    ['HTTP', '474554202f', false],
    ['SSL 2.0 hello', '802e010301', true],
  ])('%s', (_case, bytes, result) => {
    expect(tlsProtocol.probe(0, Buffer.from(bytes, 'hex'))).toBe(result);
  });
});
