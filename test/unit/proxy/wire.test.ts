import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  abortPdu,
  associateRejectPdu,
  associateRejectTransientPdu,
  PduBoundaryTracker,
} from '../../../src/proxy/dicom-pdu.js';
import { parseAuth, parseGreeting, parseRequest, replyMessage } from '../../../src/proxy/socks5.js';

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('SOCKS5 messages', () => {
  it('parses a greeting', () => {
    // VER 05, NMETHODS 02, METHODS 00 (no auth) 02 (username/password)
    expect(parseGreeting(hex('05 02 00 02'))).toEqual({ value: [0, 2], length: 4 });
    expect(parseGreeting(hex('05 02 00'))).toEqual({ need: 1 });
    expect(parseGreeting(hex('04 01 00'))).toEqual({ error: 'SOCKS version 4 is not 5' });
  });

  it('parses username/password authentication', () => {
    // VER 01, ULEN 02 "ab", PLEN 03 "xyz"
    expect(parseAuth(hex('01 02 6162 03 78797a'))).toEqual({
      value: { username: 'ab', password: 'xyz' },
      length: 8,
    });
    expect(parseAuth(hex('01 02 6162 03 78'))).toEqual({ need: 2 });
  });

  it('parses CONNECT requests for each address type', () => {
    // VER 05, CMD 01, RSV 00, ATYP 01, 127.0.0.2, port 0x0050
    expect(parseRequest(hex('05 01 00 01 7f000002 0050'))).toEqual({
      value: { command: 1, host: '127.0.0.2', port: 80 },
      length: 10,
    });
    // ATYP 03, length 0b "example.org", port 443
    expect(parseRequest(hex('05 01 00 03 0b 6578616d706c652e6f7267 01bb'))).toEqual({
      value: { command: 1, host: 'example.org', port: 443 },
      length: 18,
    });
    // ATYP 04, 2001:db8::1, port 8080
    expect(parseRequest(hex('05 01 00 04 20010db8000000000000000000000001 1f90'))).toEqual({
      value: { command: 1, host: '2001:db8::1', port: 8080 },
      length: 22,
    });
  });

  it('reports an unsupported address type', () => {
    const parsed = parseRequest(hex('05 01 00 09 00'));
    expect(parsed).toMatchObject({ value: { unsupportedAddressType: 9 } });
  });

  it('waits for a request split anywhere', () => {
    const request = hex('05 01 00 03 0b 6578616d706c652e6f7267 01bb');
    for (let split = 0; split < request.length; split++) {
      expect(parseRequest(request.subarray(0, split))).toHaveProperty('need');
    }
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buffer = Buffer.from(bytes);
        parseGreeting(buffer);
        parseAuth(buffer);
        const request = parseRequest(buffer);
        if ('length' in request) expect(request.length).toBeLessThanOrEqual(buffer.length);
      }),
    );
  });

  it('encodes replies with the bound address', () => {
    expect(replyMessage(0, '127.0.0.1', 1080)).toEqual(hex('05 00 00 01 7f000001 0438'));
    expect(replyMessage(2)).toEqual(hex('05 02 00 01 00000000 0000'));
    expect(replyMessage(0, '::1', 1)).toEqual(
      hex('05 00 00 04 00000000000000000000000000000001 0001'),
    );
  });
});

describe('DICOM PDUs', () => {
  it('builds A-ABORT and A-ASSOCIATE-RJ', () => {
    // type 07, reserved, length 4, reserved x2, source 2 (provider), reason 0
    expect(abortPdu()).toEqual(hex('07 00 00000004 00 00 02 00'));
    // type 03, reserved, length 4, reserved, result 1, source 1, reason 7
    expect(associateRejectPdu(7)).toEqual(hex('03 00 00000004 00 01 01 07'));
    // result 2 (transient), source 1 (service user), reason 1 (no reason given)
    expect(associateRejectPdu(1, true)).toEqual(hex('03 00 00000004 00 02 01 01'));
    // result 2 (transient), source 3 (presentation related), reason 1 (temporary congestion)
    expect(associateRejectTransientPdu()).toEqual(hex('03 00 00000004 00 02 03 01'));
  });

  // A-ASSOCIATE-RQ stub (type 01, length 2) then P-DATA-TF (type 04, length 3).
  const stream = hex('01 00 00000002 aaaa  04 00 00000003 bbbbbb');
  const boundaries = new Set([0, 8, 17]);

  it('finds PDU boundaries at every split', () => {
    for (let split = 0; split <= stream.length; split++) {
      const tracker = new PduBoundaryTracker();
      tracker.feed(stream.subarray(0, split));
      expect(tracker.atBoundary, `after ${split} bytes`).toBe(boundaries.has(split));
      tracker.feed(stream.subarray(split));
      expect(tracker.atBoundary).toBe(true);
      expect(tracker.firstPduType).toBe(1);
    }
  });

  it('counts the bytes to the next boundary at every split', () => {
    for (let split = 0; split <= stream.length; split++) {
      const tracker = new PduBoundaryTracker();
      tracker.feed(stream.subarray(0, split));
      const rest = stream.subarray(split);
      const next = [...boundaries].filter((boundary) => boundary >= split).sort((a, b) => a - b);
      expect(tracker.bytesToBoundary(rest), `after ${split} bytes`).toBe(next[0]! - split);
      // A chunk that stops one byte short of the boundary does not contain it.
      if (next[0]! > split) {
        expect(tracker.bytesToBoundary(rest.subarray(0, next[0]! - split - 1))).toBe(-1);
      }
    }
  });

  it('tracks any chunking like one feed', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 10 }),
        (cuts) => {
          const tracker = new PduBoundaryTracker();
          let offset = 0;
          for (const cut of [...cuts].sort((a, b) => a - b)) {
            tracker.feed(stream.subarray(offset, Math.max(offset, cut)));
            offset = Math.max(offset, cut);
          }
          tracker.feed(stream.subarray(offset));
          expect(tracker.atBoundary).toBe(true);
        },
      ),
    );
  });
});
