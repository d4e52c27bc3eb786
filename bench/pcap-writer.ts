// Writes synthetic pcap files of Ethernet/IPv4/TCP frames between one client and one server,
// for the capture generators of the benchmarks. Records get timestamps 10 µs apart, starting
// at 2026-11-03 02:00 UTC, so a generator writes the same bytes on every run.

import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';

/** TCP maximum segment size of a 1514-byte Ethernet frame. */
export const MSS = 1460;

/** TCP flag bytes used by the generators. */
export const TcpFlags = { fin: 0x01, syn: 0x02, psh: 0x08, ack: 0x10 } as const;
const PSH_ACK = TcpFlags.psh | TcpFlags.ack;

/** The side of a connection a frame comes from. */
export type Sender = 'client' | 'server';

/** The two addresses of every frame in a capture; the client's port varies by connection. */
export interface CaptureEndpoints {
  clientIp: readonly number[];
  serverIp: readonly number[];
  serverPort: number;
}

/** Buffers pcap records and writes them to a file stream in batches. */
export class PcapWriter {
  private readonly stream: WriteStream;
  private buffers: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes written so far, the file header included. */
  written = 0;
  packets = 0;
  private timestampMicros = Date.UTC(2026, 10, 3, 2, 0, 0) * 1000;

  constructor(
    path: string,
    private readonly endpoints: CaptureEndpoints,
  ) {
    this.stream = createWriteStream(path);
    const header = Buffer.alloc(24);
    header.writeUInt32LE(0xa1b2c3d4, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeUInt32LE(65_535, 16);
    header.writeUInt32LE(1, 20);
    this.push(header);
  }

  /** Writes one Ethernet/IPv4/TCP frame whose payload is the concatenation of `parts`. */
  frame(
    sender: Sender,
    clientPort: number,
    seq: number,
    ack: number,
    flags: number,
    parts: readonly Buffer[],
  ): void {
    const { clientIp, serverIp, serverPort } = this.endpoints;
    const fromServer = sender === 'server';
    const payloadLength = parts.reduce((sum, part) => sum + part.length, 0);
    const ipLength = 20 + 20 + payloadLength;
    const frame = Buffer.alloc(14 + ipLength);
    frame.writeUInt16BE(0x0800, 12);
    frame.writeUInt8(0x45, 14);
    frame.writeUInt16BE(ipLength, 16);
    frame.writeUInt8(64, 22);
    frame.writeUInt8(6, 23);
    frame.set(fromServer ? serverIp : clientIp, 26);
    frame.set(fromServer ? clientIp : serverIp, 30);
    frame.writeUInt16BE(fromServer ? serverPort : clientPort, 34);
    frame.writeUInt16BE(fromServer ? clientPort : serverPort, 36);
    frame.writeUInt32BE(seq >>> 0, 38);
    frame.writeUInt32BE(ack >>> 0, 42);
    frame.writeUInt8(0x50, 46);
    frame.writeUInt8(flags, 47);
    frame.writeUInt16BE(65_535, 48);
    let offset = 54;
    for (const part of parts) {
      part.copy(frame, offset);
      offset += part.length;
    }

    this.timestampMicros += 10;
    const record = Buffer.alloc(16);
    record.writeUInt32LE(Math.floor(this.timestampMicros / 1e6), 0);
    record.writeUInt32LE(this.timestampMicros % 1e6, 4);
    record.writeUInt32LE(frame.length, 8);
    record.writeUInt32LE(frame.length, 12);
    this.push(record);
    this.push(frame);
    this.packets++;
  }

  private push(buffer: Buffer): void {
    this.buffers.push(buffer);
    this.pendingBytes += buffer.length;
    this.written += buffer.length;
  }

  /** Writes the buffered records, then waits for 'drain' if the stream's buffer is full. */
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const chunk = Buffer.concat(this.buffers);
    this.buffers = [];
    this.pendingBytes = 0;
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  /** Bytes buffered since the last flush. */
  get pending(): number {
    return this.pendingBytes;
  }

  async close(): Promise<void> {
    await this.flush();
    this.stream.end();
    await once(this.stream, 'finish');
  }
}

/**
 * One TCP connection's sequence numbers, for writing both directions. The constructor writes
 * the three-way handshake and close() the FIN exchange, both started by the client.
 */
export class TcpConnection {
  private readonly nextSeq: Record<Sender, number> = { client: 1000, server: 5000 };
  private readonly unacked: Record<Sender, number> = { client: 0, server: 0 };

  constructor(
    private readonly out: PcapWriter,
    private readonly clientPort: number,
  ) {
    const { client, server } = this.nextSeq;
    out.frame('client', clientPort, client - 1, 0, TcpFlags.syn, []);
    out.frame('server', clientPort, server - 1, client, TcpFlags.syn | TcpFlags.ack, []);
    out.frame('client', clientPort, client, server, TcpFlags.ack, []);
  }

  /** Sends `payload` in one frame, however long it is, with no acknowledgement. */
  send(sender: Sender, payload: Buffer): void {
    this.out.frame(
      sender,
      this.clientPort,
      this.nextSeq[sender],
      this.nextSeq[peer(sender)],
      PSH_ACK,
      [payload],
    );
    this.nextSeq[sender] += payload.length;
  }

  /**
   * Sends `head` then `data` in MSS-sized segments, so that a segment may carry the end of one
   * and the start of the other. The peer acknowledges every second segment from this sender.
   */
  sendSegments(sender: Sender, head: Buffer, data?: Buffer): void {
    const receiver = peer(sender);
    const total = head.length + (data?.length ?? 0);
    for (let offset = 0; offset < total; offset += MSS) {
      const end = Math.min(offset + MSS, total);
      const parts: Buffer[] = [];
      if (offset < head.length) parts.push(head.subarray(offset, Math.min(end, head.length)));
      if (data !== undefined && end > head.length) {
        parts.push(data.subarray(Math.max(0, offset - head.length), end - head.length));
      }
      this.out.frame(
        sender,
        this.clientPort,
        this.nextSeq[sender],
        this.nextSeq[receiver],
        PSH_ACK,
        parts,
      );
      this.nextSeq[sender] += end - offset;
      if (++this.unacked[sender] === 2) {
        this.unacked[sender] = 0;
        this.out.frame(
          receiver,
          this.clientPort,
          this.nextSeq[receiver],
          this.nextSeq[sender],
          TcpFlags.ack,
          [],
        );
      }
    }
  }

  close(): void {
    const { client, server } = this.nextSeq;
    const finAck = TcpFlags.fin | TcpFlags.ack;
    this.out.frame('client', this.clientPort, client, server, finAck, []);
    this.out.frame('server', this.clientPort, server, client + 1, finAck, []);
    this.out.frame('client', this.clientPort, client + 1, server + 1, TcpFlags.ack, []);
  }
}

function peer(sender: Sender): Sender {
  return sender === 'client' ? 'server' : 'client';
}
