// Tests for progress output: plain throttled lines off a TTY, nothing when disabled, never stdout.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createProgress } from "../../src/cli/progress.js";

function fakeStream(isTTY: boolean) {
  const chunks: string[] = [];
  const stream = {
    isTTY,
    columns: 100,
    write: (s: string) => {
      chunks.push(s);
      return true;
    },
    on: () => stream,
    removeListener: () => stream,
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, chunks };
}

describe("createProgress", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(0);
  });
  afterEach(() => vi.useRealTimers());

  it("off a TTY prints at most one line per 5 s and a final line", () => {
    const { stream, chunks } = fakeStream(false);
    const stdout = vi.spyOn(process.stdout, "write");
    const p = createProgress("train", 100, { stream });
    p.update(1, { loss: 3.14159, "tok/s": 1200 });
    vi.setSystemTime(4999);
    p.update(10);
    expect(chunks).toEqual([]);
    vi.setSystemTime(5000);
    p.update(25, { loss: 2.5 });
    vi.setSystemTime(6000);
    p.update(30);
    expect(chunks).toEqual(["train 25/100 (25%) eta 15s loss 2.500\n"]);
    vi.setSystemTime(8000);
    p.update(40);
    p.stop();
    p.stop();
    expect(chunks.slice(1)).toEqual(["train 40/100 (40%) eta 12s loss 2.500\n"]);
    expect(stdout).not.toHaveBeenCalled();
    stdout.mockRestore();
  });

  it("does not repeat a final line that an update just printed", () => {
    const { stream, chunks } = fakeStream(false);
    const p = createProgress("eval", 4, { stream });
    vi.setSystemTime(20_000);
    p.update(4);
    p.stop();
    expect(chunks).toEqual(["eval 4/4 (100%) in 20s\n"]);
  });

  it("prints nothing when disabled", () => {
    const { stream, chunks } = fakeStream(false);
    const p = createProgress("x", 10, { stream, enabled: false });
    vi.setSystemTime(60_000);
    p.update(5);
    p.stop();
    expect(chunks).toEqual([]);
  });

  it("on a TTY draws a bar with done/total and fields to the given stream", () => {
    const { stream, chunks } = fakeStream(true);
    const p = createProgress("train", 50, { stream });
    p.update(10, { loss: 1.25 });
    p.stop();
    const text = chunks.join("");
    expect(text).toContain("10/50");
    expect(text).toContain("loss 1.250");
    expect(text).toContain("train");
  });

  // finetune refreshes the line every second with the same step (memory, ETA) while the final eval
  // and the save run; the last step used to come out two or three times.
  it("off a TTY prints the last step once, however often it is refreshed before stop", () => {
    const { stream, chunks } = fakeStream(false);
    const p = createProgress("train", 4, { stream });
    vi.setSystemTime(6000);
    p.update(3, { loss: 2.5, rss: "0.10 GB" });
    vi.setSystemTime(7000);
    p.update(4, { loss: 2.25, rss: "0.10 GB" });
    for (let t = 8000; t <= 30_000; t += 1000) {
      vi.setSystemTime(t);
      p.update(4, { loss: 2.25, rss: "0.11 GB" });
    }
    p.stop();
    expect(chunks).toEqual(["train 3/4 (75%) eta 2s loss 2.500 rss 0.10 GB\n", "train 4/4 (100%) in 7s loss 2.250 rss 0.10 GB\n"]);
  });

  it("off a TTY does not repeat a step that is refreshed while it runs", () => {
    const { stream, chunks } = fakeStream(false);
    const p = createProgress("train", 10, { stream });
    for (let t = 5000; t <= 20_000; t += 1000) {
      vi.setSystemTime(t);
      p.update(2);
    }
    expect(chunks).toEqual(["train 2/10 (20%) eta 20s\n"]);
  });

  it("on a TTY a finished bar is not drawn again after other output", () => {
    const { stream, chunks } = fakeStream(true);
    const p = createProgress("train", 5, { stream });
    p.update(5, { loss: 1.5 });
    const drawn = chunks.join("").split("5/5").length - 1;
    stream.write("\nstep 5: held-out loss 1.4\n");
    vi.setSystemTime(10_000);
    vi.advanceTimersByTime(5000);
    p.update(5, { loss: 1.5 });
    p.stop();
    const after = chunks.join("").split("step 5: held-out loss 1.4")[1]!;
    expect(drawn).toBeGreaterThan(0);
    expect(after).not.toContain("5/5");
  });
});
