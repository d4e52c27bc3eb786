import { hostname } from 'node:os';
import { describe, expect, test } from 'vitest';
import {
  buildAlertEvent,
  buildBaseEvent,
  createObserver,
  networkDirection,
  newEventId,
  TOLLGATE_VERSION,
} from '../../../src/events/ecs.js';

describe('newEventId', () => {
  test('is a 26-character ULID', () => {
    expect(newEventId(Date.now())).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  test('encodes the time so ids sort by time', () => {
    expect(newEventId(0).slice(0, 10)).toBe('0000000000');
    // 1469918176385 ms is "01ARYZ6S41" in the ULID specification's example.
    expect(newEventId(1469918176385).slice(0, 10)).toBe('01ARYZ6S41');
    expect(newEventId(1000) < newEventId(2000)).toBe(true);
  });

  test('ids are unique within a millisecond', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newEventId(1_700_000_000_000)));
    expect(ids.size).toBe(10_000);
  });
});

describe('buildBaseEvent', () => {
  const observer = createObserver('ids', 'gw1');

  test('fills time, id, event and observer fields', () => {
    const event = buildBaseEvent({
      action: 'network-flow',
      kind: 'event',
      category: ['network'],
      type: ['connection', 'end'],
      ts: Date.parse('2024-03-06T12:00:01.250Z'),
      start: Date.parse('2024-03-06T12:00:00Z'),
      end: Date.parse('2024-03-06T12:00:01.250Z'),
      observer,
    });
    expect(event['@timestamp']).toBe('2024-03-06T12:00:01.250Z');
    expect(event.event.dataset).toBe('tollgate.flow');
    expect(event.event.start).toBe('2024-03-06T12:00:00.000Z');
    expect(event.event.duration).toBe(1_250_000_000);
    expect(event.observer).toEqual({
      vendor: 'tollgate',
      product: 'tollgate',
      type: 'ids',
      version: TOLLGATE_VERSION,
      hostname: 'gw1',
    });
    expect(event.rule).toBeUndefined();
  });

  test('alert carries rule, severity and verdict', () => {
    const event = buildAlertEvent({
      action: 'egress-threshold-exceeded',
      category: ['network', 'intrusion_detection'],
      type: ['info'],
      ts: 0,
      observer,
      rule: { id: 'egress-threshold', name: 'More than 50 MB', severity: 47 },
      verdict: 'would-block',
    });
    expect(event.event.kind).toBe('alert');
    expect(event.event.severity).toBe(47);
    expect(event.event.dataset).toBe('tollgate.alert');
    expect(event.rule).toEqual({ id: 'egress-threshold', name: 'More than 50 MB' });
    expect(event.tollgate?.verdict).toBe('would-block');
  });

  test('observer defaults to this host and the package version', () => {
    const observer = createObserver('proxy');
    expect(observer.hostname).toBe(hostname());
    expect(observer.version).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('networkDirection', () => {
  test.each([
    [true, false, 'outbound'],
    [false, true, 'inbound'],
    [true, true, 'internal'],
    [false, false, 'external'],
  ] as const)('source inside %s, destination inside %s -> %s', (source, destination, expected) => {
    expect(networkDirection(source, destination)).toBe(expected);
  });
});
