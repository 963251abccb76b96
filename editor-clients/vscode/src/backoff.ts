// When to restart a server that crashed: exponential backoff, bounded.
// Pure logic (no `vscode` import), unit-tested in test/backoff.test.ts.

export interface BackoffOptions {
  /** Delay before the first restart, in ms. */
  initialDelay: number;
  /** Largest delay, in ms. */
  maxDelay: number;
  /** Most restarts within `window` ms; one more crash and we give up. */
  maxRestarts: number;
  window: number;
  /** A server that ran this long (ms) counts as healthy: the delays start over. */
  healthyAfter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialDelay: 1_000,
  maxDelay: 30_000,
  maxRestarts: 5,
  window: 5 * 60_000,
  healthyAfter: 60_000,
};

export type RestartDecision =
  | { restart: true; delay: number; attempt: number }
  | { restart: false; crashes: number; window: number };

export class RestartPolicy {
  private crashes: number[] = [];
  private streak = 0;

  constructor(private readonly options: BackoffOptions = DEFAULT_BACKOFF) {}

  /** The server crashed at `now` after running since `startedAt`: restart (after `delay`)? */
  onCrash(now: number, startedAt: number | undefined): RestartDecision {
    const { initialDelay, maxDelay, maxRestarts, window, healthyAfter } = this.options;
    if (startedAt !== undefined && now - startedAt >= healthyAfter) {
      this.streak = 0;
    }
    this.crashes = this.crashes.filter((t) => now - t < window);
    this.crashes.push(now);
    if (this.crashes.length > maxRestarts) {
      return { restart: false, crashes: this.crashes.length, window };
    }
    const delay = Math.min(maxDelay, initialDelay * 2 ** this.streak);
    this.streak += 1;
    return { restart: true, delay, attempt: this.crashes.length };
  }

  /** Forget the crashes (the user restarted the server by hand). */
  reset(): void {
    this.crashes = [];
    this.streak = 0;
  }
}
