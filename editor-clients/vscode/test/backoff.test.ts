import { describe, expect, it } from "vitest";
import { RestartPolicy } from "../src/backoff";

const options = { initialDelay: 1000, maxDelay: 8000, maxRestarts: 5, window: 60_000, healthyAfter: 30_000 };

describe("RestartPolicy", () => {
  it("doubles the delay up to the maximum", () => {
    const policy = new RestartPolicy({ ...options, maxRestarts: 10, window: 1000 });
    const delays = [];
    for (let i = 0; i < 6; i++) {
      const now = i * 5000; // outside the window: never gives up
      const decision = policy.onCrash(now, now - 100);
      expect(decision.restart).toBe(true);
      if (decision.restart) delays.push(decision.delay);
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it("gives up after too many crashes within the window", () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 5; i++) expect(policy.onCrash(i * 1000, i * 1000 - 10).restart).toBe(true);
    const decision = policy.onCrash(5500, 5400);
    expect(decision).toEqual({ restart: false, crashes: 6, window: 60_000 });
  });

  it("forgets crashes older than the window", () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 5; i++) policy.onCrash(i * 1000, undefined);
    expect(policy.onCrash(120_000, 119_000).restart).toBe(true);
  });

  it("starts the delays over after a healthy run", () => {
    const policy = new RestartPolicy(options);
    policy.onCrash(0, undefined);
    policy.onCrash(2000, 1500);
    const decision = policy.onCrash(100_000, 50_000);
    expect(decision).toMatchObject({ restart: true, delay: 1000 });
  });

  it("reset clears everything (a restart by hand)", () => {
    const policy = new RestartPolicy(options);
    for (let i = 0; i < 6; i++) policy.onCrash(i, undefined);
    policy.reset();
    expect(policy.onCrash(10, undefined)).toMatchObject({ restart: true, delay: 1000, attempt: 1 });
  });
});
