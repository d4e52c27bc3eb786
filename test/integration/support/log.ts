import { type Logger, pino } from 'pino';

/** A logger for gateways the tests start: silent unless TOLLGATE_TEST_LOG names a level. */
export function testLog(): Logger {
  return pino({ level: process.env.TOLLGATE_TEST_LOG ?? 'silent' }, pino.destination(2));
}
