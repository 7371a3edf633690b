/**
 * The browser worker's pure parts, run in Node: the fallback SHA-256 (for pages outside a
 * secure context), thread and name choices, the probe model, and the join URLs and banner.
 */
import { createHash } from "node:crypto";
import * as ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { probeModel } from "../../coordinator/join/page.js";
import { joinBanner, joinUrls } from "../../coordinator/join/urls.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { deviceLabel } from "../../worker/browser/browser-hello.js";
import { pickThreads } from "../../worker/browser/ort-web.js";
import { sha256Hex, sha256HexJs } from "../../worker/browser/sha256.js";

describe("sha256HexJs", () => {
  it("equals node:crypto on every length around the block and padding boundaries, and on 1 MiB", async () => {
    const data = new Uint8Array(seededNormal(1, 300_000, 1).buffer);
    for (let n = 0; n <= 200; n++) {
      const b = data.subarray(7, 7 + n);
      expect(sha256HexJs(b), `length ${n}`).toBe(createHash("sha256").update(b).digest("hex"));
    }
    const big = data.subarray(0, 1 << 20);
    expect(sha256HexJs(big)).toBe(createHash("sha256").update(big).digest("hex"));
    expect(await sha256Hex(big)).toBe(createHash("sha256").update(big).digest("hex"));
    expect(sha256HexJs(new Uint8Array(0))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});

describe("browser worker choices", () => {
  it("uses one thread unless cross-origin isolated, then what was asked or ORT's default", () => {
    expect(pickThreads(0, false, 8)).toBe(1);
    expect(pickThreads(4, false, 8)).toBe(1);
    expect(pickThreads(0, true, 8)).toBe(4);
    expect(pickThreads(0, true, 2)).toBe(1);
    expect(pickThreads(0, true, 16)).toBe(4);
    expect(pickThreads(3, true, 2)).toBe(3);
  });

  it("names devices from their user agent", () => {
    expect(deviceLabel("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36")).toBe("android-chrome");
    expect(deviceLabel("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")).toBe("iphone-safari");
    expect(deviceLabel("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")).toBe("linux-firefox");
  });

  it("builds a probe model that ONNX Runtime runs as y = x", async () => {
    const session = await ort.InferenceSession.create(probeModel());
    const y = (await session.run({ x: new ort.Tensor("float32", new Float32Array([1, 2, 3, 4]), [1, 4]) })).y!;
    await session.release();
    expect([...(y.data as Float32Array)]).toEqual([1, 2, 3, 4]);
  });
});

describe("join URLs", () => {
  const interfaces = {
    lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" }],
    eth0: [
      { address: "192.168.1.20", netmask: "255.255.255.0", family: "IPv4", mac: "aa:bb:cc:dd:ee:ff", internal: false, cidr: "192.168.1.20/24" },
      { address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "aa:bb:cc:dd:ee:ff", internal: false, cidr: "fe80::1/64", scopeid: 2 },
    ],
    wlan0: [{ address: "10.0.0.5", netmask: "255.255.255.0", family: "IPv4", mac: "aa:bb:cc:dd:ee:00", internal: false, cidr: "10.0.0.5/24" }],
  } as const;

  it("lists every non-internal IPv4 address on a wildcard host, the address itself otherwise, loopback without a QR code", () => {
    const i = interfaces as unknown as Parameters<typeof joinUrls>[3];
    expect(joinUrls("0.0.0.0", 7070, { tls: false }, i)).toEqual([
      { url: "http://192.168.1.20:7070/join", reachableFromOtherDevices: true },
      { url: "http://10.0.0.5:7070/join", reachableFromOtherDevices: true },
    ]);
    expect(joinUrls("127.0.0.1", 7070, { tls: false }, i)).toEqual([{ url: "http://127.0.0.1:7070/join", reachableFromOtherDevices: false }]);
    expect(joinUrls("192.168.1.20", 443, { tls: true }, i)).toEqual([{ url: "https://192.168.1.20:443/join", reachableFromOtherDevices: true }]);
    expect(joinUrls("0.0.0.0", 7070, { tls: false }, { lo: interfaces.lo } as unknown as Parameters<typeof joinUrls>[3])).toEqual([
      { url: "http://127.0.0.1:7070/join", reachableFromOtherDevices: false },
    ]);
  });

  it("prints a terminal QR code for URLs other devices can reach, and says when a token is needed", async () => {
    const text = await joinBanner([{ url: "http://192.168.1.20:7070/join", reachableFromOtherDevices: true }], { tokenRequired: true });
    const lines = text.split("\n");
    expect(lines[0]).toContain("#token=");
    expect(lines[1]).toBe("join from a phone or any browser: http://192.168.1.20:7070/join");
    // A QR code drawn with half-block characters: a square block of rows.
    const qr = lines.slice(2).filter((l) => /[▀▄█]/.test(l));
    expect(qr.length).toBeGreaterThan(10);
    const loop = await joinBanner([{ url: "http://127.0.0.1:7070/join", reachableFromOtherDevices: false }], { tokenRequired: false });
    expect(loop).toBe("join from a browser on this machine: http://127.0.0.1:7070/join (listening on loopback only; --host 0.0.0.0 lets phones join)\n");
  });
});
