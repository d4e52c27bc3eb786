import { describe, expect, test } from 'vitest';
import {
  type CompiledTimeWindow,
  localTime,
  parseClockTime,
  timeWindowContains,
  WEEKDAYS,
} from '../../../src/policy/time-window.js';

function window(from: string, to: string, days: string[], timeZone: string): CompiledTimeWindow {
  return {
    fromMinute: parseClockTime(from)!,
    toMinute: parseClockTime(to)!,
    dayMask: days.reduce((mask, day) => mask | (1 << WEEKDAYS.indexOf(day as never)), 0),
    timeZone,
  };
}

const at = (iso: string) => Date.parse(iso);

describe('parseClockTime', () => {
  test.each([
    ['00:00', 0],
    ['07:30', 450],
    ['23:59', 1439],
    ['24:00', 1440],
    ['24:01', null],
    ['7:00', null],
    ['12:60', null],
    ['ab:cd', null],
  ])('%s', (text, minute) => {
    expect(parseClockTime(text)).toBe(minute);
  });
});

describe('timeWindowContains', () => {
  // 2024-03-08 is a Friday.
  const weeknights = window('19:00', '07:00', ['fri'], 'UTC');

  test('evening part belongs to the listed day', () => {
    expect(timeWindowContains(weeknights, at('2024-03-08T19:00:00Z'))).toBe(true);
    expect(timeWindowContains(weeknights, at('2024-03-08T18:59:59Z'))).toBe(false);
    expect(timeWindowContains(weeknights, at('2024-03-08T23:59:00Z'))).toBe(true);
  });

  test('morning part belongs to the previous day', () => {
    expect(timeWindowContains(weeknights, at('2024-03-09T03:00:00Z'))).toBe(true);
    expect(timeWindowContains(weeknights, at('2024-03-09T06:59:00Z'))).toBe(true);
    expect(timeWindowContains(weeknights, at('2024-03-09T07:00:00Z'))).toBe(false);
    // Friday morning is Thursday night's window, and Thursday is not listed.
    expect(timeWindowContains(weeknights, at('2024-03-08T03:00:00Z'))).toBe(false);
  });

  test('daytime window does not wrap', () => {
    const office = window('08:00', '17:00', ['mon', 'tue', 'wed', 'thu', 'fri'], 'UTC');
    expect(timeWindowContains(office, at('2024-03-08T08:00:00Z'))).toBe(true);
    expect(timeWindowContains(office, at('2024-03-08T16:59:00Z'))).toBe(true);
    expect(timeWindowContains(office, at('2024-03-08T17:00:00Z'))).toBe(false);
    expect(timeWindowContains(office, at('2024-03-09T12:00:00Z'))).toBe(false);
  });

  test('equal from and to covers whole days', () => {
    const sunday = window('00:00', '00:00', ['sun'], 'UTC');
    expect(timeWindowContains(sunday, at('2024-03-10T00:00:00Z'))).toBe(true);
    expect(timeWindowContains(sunday, at('2024-03-10T23:59:00Z'))).toBe(true);
    expect(timeWindowContains(sunday, at('2024-03-11T00:00:00Z'))).toBe(false);
  });

  test('time zone shifts the window', () => {
    const berlin = window('19:00', '07:00', WEEKDAYS.slice(), 'Europe/Berlin');
    // 18:30 UTC in winter is 19:30 in Berlin (UTC+1).
    expect(timeWindowContains(berlin, at('2024-01-15T18:30:00Z'))).toBe(true);
    // 17:30 UTC in summer is 19:30 in Berlin (UTC+2).
    expect(timeWindowContains(berlin, at('2024-07-15T17:30:00Z'))).toBe(true);
    expect(timeWindowContains(berlin, at('2024-07-15T16:30:00Z'))).toBe(false);
    // 05:30 UTC in summer is 07:30 in Berlin, after the window closed.
    expect(timeWindowContains(berlin, at('2024-07-16T05:30:00Z'))).toBe(false);
  });

  test('day boundary follows the zone, not UTC', () => {
    // 2024-03-08T23:30Z is Saturday 08:30 in Tokyo (UTC+9).
    const saturdayTokyo = window('08:00', '09:00', ['sat'], 'Asia/Tokyo');
    expect(timeWindowContains(saturdayTokyo, at('2024-03-08T23:30:00Z'))).toBe(true);
    const fridayUtc = window('08:00', '09:00', ['sat'], 'UTC');
    expect(timeWindowContains(fridayUtc, at('2024-03-08T23:30:00Z'))).toBe(false);
  });

  test('half-hour offset zone', () => {
    const local = localTime(at('2024-03-08T00:00:00Z'), 'Asia/Kolkata');
    expect(local.minute).toBe(5 * 60 + 30);
    expect(WEEKDAYS[local.weekday]).toBe('fri');
  });
});
