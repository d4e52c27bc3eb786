// Time-of-day windows in an IANA time zone, for rules such as "vendor access 19:00-07:00".
//
// A window with `from` later than `to` wraps midnight. Its `days` name the day the window opens
// on: with days [fri] and 19:00-07:00, Saturday 03:00 is inside (Friday night's window) and
// Friday 03:00 is not. A window with `from` equal to `to` covers the whole of each listed day.

export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface CompiledTimeWindow {
  /** Minutes after local midnight, 0..1440. */
  fromMinute: number;
  toMinute: number;
  /** Bit i set when WEEKDAYS[i] is listed. */
  dayMask: number;
  timeZone: string;
}

interface LocalTime {
  weekday: number;
  minute: number;
}

const MINUTE_MS = 60_000;
const formatters = new Map<string, Intl.DateTimeFormat>();
/** The last lookup per zone: rules are evaluated many times within the same minute. */
const lastLookup = new Map<string, { epochMinute: number; local: LocalTime }>();

/** Parses "HH:MM" (00:00 to 24:00) into minutes after midnight, or returns null. */
export function parseClockTime(text: string): number | null {
  const match = /^(\d{2}):(\d{2})$/.exec(text);
  if (!match) return null;
  const hours = Number(match[1]);
  const minutes = Number(match[2]);
  if (minutes > 59 || hours > 24 || (hours === 24 && minutes !== 0)) return null;
  return hours * 60 + minutes;
}

/** True when the runtime's Intl data knows `timeZone`. */
export function isKnownTimeZone(timeZone: string): boolean {
  try {
    formatterFor(timeZone);
    return true;
  } catch {
    return false;
  }
}

/** The process's own time zone, used when a window names none. */
export function systemTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone;
}

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Converts an epoch time to the weekday (0 = Sunday) and minute of day in `timeZone`. */
export function localTime(ts: number, timeZone: string): LocalTime {
  const epochMinute = Math.floor(ts / MINUTE_MS);
  const cached = lastLookup.get(timeZone);
  if (cached && cached.epochMinute === epochMinute) return cached.local;

  let weekday = 0;
  let hour = 0;
  let minute = 0;
  for (const part of formatterFor(timeZone).formatToParts(epochMinute * MINUTE_MS)) {
    if (part.type === 'weekday') weekday = WEEKDAYS.indexOf(part.value.toLowerCase() as Weekday);
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  const local = { weekday, minute: hour * 60 + minute };
  lastLookup.set(timeZone, { epochMinute, local });
  return local;
}

/** True when `ts` (epoch milliseconds) falls inside the window. */
export function timeWindowContains(window: CompiledTimeWindow, ts: number): boolean {
  const { weekday, minute } = localTime(ts, window.timeZone);
  const dayListed = (day: number) => (window.dayMask & (1 << day)) !== 0;
  const { fromMinute, toMinute } = window;

  if (fromMinute === toMinute) return dayListed(weekday);
  if (fromMinute < toMinute) {
    return dayListed(weekday) && minute >= fromMinute && minute < toMinute;
  }
  // Wraps midnight: the evening part belongs to today, the morning part to yesterday's window.
  if (minute >= fromMinute) return dayListed(weekday);
  if (minute < toMinute) return dayListed((weekday + 6) % 7);
  return false;
}
