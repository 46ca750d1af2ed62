/**
 * The terminal progress line: a redrawn bar on a TTY, a plain line every few seconds otherwise.
 */
export interface Bar {
  update(done: number, total: number, detail: string): void;
  done(line?: string): void;
}

export function progressBar(label: string, out: NodeJS.WriteStream = process.stderr, width = 30): Bar {
  const tty = Boolean(out.isTTY);
  let last = 0;
  let lastLine = '';
  return {
    update(done, total, detail) {
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      if (tty) {
        const full = Math.round(frac * width);
        const line = `${label} [${'#'.repeat(full)}${'-'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${detail}`;
        if (line !== lastLine) out.write(`\r\x1b[2K${line.slice(0, (out.columns || 120) - 1)}`);
        lastLine = line;
      } else {
        const now = Date.now();
        if (now - last < 2000 && frac < 1) return;
        last = now;
        out.write(`${label} ${(frac * 100).toFixed(0)}% ${detail}\n`);
      }
    },
    done(line) {
      if (tty) out.write('\r\x1b[2K');
      if (line) out.write(line + '\n');
    },
  };
}
