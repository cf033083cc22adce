import { type Logger, pino } from "pino";

/** JSON lines on stdout; `debug` lowers the level from info. */
export function createLogger(component: string, debug: boolean): Logger {
  return pino({ level: debug ? "debug" : "info", base: { component } });
}
