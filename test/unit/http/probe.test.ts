import { describe, expect, it } from 'vitest';
import { hostFromAuthority, httpProtocol } from '../../../src/protocols/http/index.js';

const probe = (text: string, side: 0 | 1 = 0) =>
  httpProtocol.probe(side, Buffer.from(text, 'latin1'));

describe('httpProtocol.probe', () => {
  it.each(['GET /', 'PUT /x', 'PROPFIND /export', 'CONNECT host:443', 'OPTIONS *', 'MKCOL /d'])(
    'accepts %s',
    (text) => {
      expect(probe(text)).toBe(true);
    },
  );

  it('accepts another token with a full request line', () => {
    expect(probe('REPORT /cal HTTP/1.1\r\n')).toBe(true);
  });

  it('rejects an SMTP greeting-like line', () => {
    expect(probe('EHLO mail.example\r\n')).toBe(false);
  });

  it.each([
    ['nothing yet', ''],
    ['method without space', 'GET'],
    ['space without target', 'GET '],
    ['other token before LF', 'REPORT /cal HTT'],
  ])('waits on %s', (_case, text) => {
    expect(probe(text)).toBeUndefined();
  });

  it.each([
    ['TLS record', '\x16\x03\x01\x00\x05\x01'],
    ['leading space', ' GET /'],
    ['double space', 'GET  /'],
    ['17-byte token', `${'A'.repeat(17)} /`],
  ])('rejects %s', (_case, text) => {
    expect(probe(text)).toBe(false);
  });

  it('rejects responder bytes', () => {
    expect(probe('GET /', 1)).toBe(false);
  });
});

describe('hostFromAuthority', () => {
  it.each([
    ['S3.AmazonAWS.com:443', 's3.amazonaws.com'],
    ['example.org.', 'example.org'],
    ['[2001:DB8::1]:80', '2001:db8::1'],
    ['203.0.113.5:8080', '203.0.113.5'],
  ])('reads %s', (authority, host) => {
    expect(hostFromAuthority(authority)).toBe(host);
  });

  it.each(['', ':80', 'bad host', 'host:port', '[::1', 'a..b', `${'a'.repeat(254)}`])(
    'rejects %j',
    (authority) => {
      expect(hostFromAuthority(authority)).toBeNull();
    },
  );
});
