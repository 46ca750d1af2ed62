/** k6 provides a console (log, warn, error) that @types/k6 does not declare. */
declare const console: {
  log(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};
