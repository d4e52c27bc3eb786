// A small reader for the fixture captures: classic pcap, Ethernet, IPv4, TCP. It returns each
// connection's payload per direction, ordered by sequence number, so the tests can feed the
// analyzer what the engine's reassembly would.
import { readFileSync } from 'node:fs';

export interface TcpConnection {
  client: string;
  server: string;
  serverPort: number;
  /** Payload sent by the initiator (index 0) and by the responder (index 1). */
  streams: [Buffer, Buffer];
  /** Payload segments in capture order, which on loopback is also sequence order. */
  segments: Array<{ side: 0 | 1; payload: Buffer }>;
}

interface Segment {
  seq: number;
  payload: Buffer;
}

export function readTcpConnections(path: string): TcpConnection[] {
  const file = readFileSync(path);
  if (file.readUInt32LE(0) !== 0xa1b2c3d4 || file.readUInt32LE(20) !== 1) {
    throw new Error(`${path}: expected a little-endian microsecond pcap with Ethernet frames`);
  }
  const byKey = new Map<
    string,
    {
      client: string;
      server: string;
      port: number;
      isn: [number, number];
      segments: [Segment[], Segment[]];
      ordered: Array<{ side: 0 | 1; payload: Buffer }>;
    }
  >();
  let offset = 24;
  while (offset + 16 <= file.length) {
    const captured = file.readUInt32LE(offset + 8);
    const frame = file.subarray(offset + 16, offset + 16 + captured);
    offset += 16 + captured;
    if (frame.readUInt16BE(12) !== 0x0800) continue;
    const ip = frame.subarray(14);
    const ipHeader = (ip[0]! & 0x0f) * 4;
    if (ip[9] !== 6) continue;
    const totalLength = ip.readUInt16BE(2);
    const src = `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
    const dst = `${ip[16]}.${ip[17]}.${ip[18]}.${ip[19]}`;
    const tcp = ip.subarray(ipHeader, totalLength);
    const srcPort = tcp.readUInt16BE(0);
    const dstPort = tcp.readUInt16BE(2);
    const seq = tcp.readUInt32BE(4);
    const flags = tcp[13]!;
    const payload = tcp.subarray((tcp[12]! >> 4) * 4);
    const a = `${src}:${srcPort}`;
    const b = `${dst}:${dstPort}`;
    const key = a < b ? `${a}-${b}` : `${b}-${a}`;
    const syn = (flags & 0x02) !== 0;
    const ack = (flags & 0x10) !== 0;
    let connection = byKey.get(key);
    if (connection === undefined) {
      if (!syn || ack) continue;
      connection = {
        client: a,
        server: b,
        port: dstPort,
        isn: [seq + 1, 0],
        segments: [[], []],
        ordered: [],
      };
      byKey.set(key, connection);
      continue;
    }
    const direction = a === connection.client ? 0 : 1;
    if (syn) {
      connection.isn[1] = seq + 1;
      continue;
    }
    if (payload.length > 0) {
      connection.segments[direction].push({
        seq: (seq - connection.isn[direction]) >>> 0,
        payload,
      });
      connection.ordered.push({ side: direction, payload });
    }
  }
  return [...byKey.values()]
    .map(
      (connection): TcpConnection => ({
        client: connection.client,
        server: connection.server,
        serverPort: connection.port,
        streams: [assemble(connection.segments[0]), assemble(connection.segments[1])],
        segments: connection.ordered,
      }),
    )
    .map(inSequenceOrder);
}

/**
 * Loopback captures can hold a direction's segments out of sequence order (tshark needs
 * tcp.reassemble_out_of_order for them too). This keeps the capture's interleaving of the two
 * directions but takes each segment's bytes from the reassembled stream, as the engine would.
 */
function inSequenceOrder(connection: TcpConnection): TcpConnection {
  const offsets = [0, 0];
  const segments = connection.segments.map((segment) => {
    const start = offsets[segment.side]!;
    const payload = connection.streams[segment.side].subarray(
      start,
      start + segment.payload.length,
    );
    offsets[segment.side] = start + payload.length;
    return { side: segment.side, payload };
  });
  return { ...connection, segments: segments.filter((segment) => segment.payload.length > 0) };
}

function assemble(segments: Segment[]): Buffer {
  const sorted = [...segments].sort((x, y) => x.seq - y.seq);
  const parts: Buffer[] = [];
  let next = 0;
  for (const segment of sorted) {
    const end = segment.seq + segment.payload.length;
    if (end <= next) continue;
    if (segment.seq > next) throw new Error(`capture is missing bytes ${next}..${segment.seq}`);
    parts.push(segment.payload.subarray(next - segment.seq));
    next = end;
  }
  return Buffer.concat(parts);
}
