// The JSON-lines event files that the gateway and `tollgate sniff` write.

import { existsSync, readFileSync } from 'node:fs';

export type Event = Record<string, any>;

/** Parses every non-empty line of a JSON-lines file; throws when the file is missing. */
export function readEvents(path: string): Event[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Event);
}

/** Keeps the events whose event.action is `action`, typed as the caller's events. */
export function byAction<E extends Event>(events: E[], action: string): E[] {
  return events.filter((event) => event.event.action === action);
}

/** Like readEvents, but returns no events while the file does not exist yet. */
export function readEventsIfAny(path: string): Event[] {
  return existsSync(path) ? readEvents(path) : [];
}
