/**
 * What the device lets the page do: the Battery Status API (for "only while charging") and
 * the Screen Wake Lock API (for "keep the screen on"). Both exist only in some browsers and
 * only in secure contexts; each watcher says whether it is supported, so the page can say
 * so instead of offering a switch that does nothing.
 */

interface BatteryLike extends EventTarget {
  charging: boolean;
  level: number;
}

export interface BatteryState {
  charging: boolean;
  level: number;
}

/**
 * Calls `onChange` with the battery's state now and on every change; resolves to false when
 * this browser has no Battery Status API (Firefox, Safari, and any page on plain http).
 */
export async function watchBattery(onChange: (s: BatteryState) => void): Promise<boolean> {
  const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryLike> };
  if (typeof nav.getBattery !== "function") return false;
  let battery: BatteryLike;
  try {
    battery = await nav.getBattery();
  } catch {
    return false;
  }
  const report = (): void => onChange({ charging: battery.charging, level: battery.level });
  battery.addEventListener("chargingchange", report);
  battery.addEventListener("levelchange", report);
  report();
  return true;
}

/**
 * Keeps the screen on while enabled. Browsers drop a wake lock whenever the page is hidden,
 * so it is taken again each time the page becomes visible.
 */
export class ScreenWakeLock {
  private sentinel: WakeLockSentinel | null = null;
  private wanted = false;

  constructor(private readonly onChange: (held: boolean, error: string | null) => void) {
    document.addEventListener("visibilitychange", () => {
      if (this.wanted && document.visibilityState === "visible") void this.acquire();
    });
  }

  /** True where the browser has the Screen Wake Lock API. */
  static get supported(): boolean {
    return typeof navigator.wakeLock?.request === "function";
  }

  async set(on: boolean): Promise<void> {
    this.wanted = on;
    if (on) await this.acquire();
    else {
      const s = this.sentinel;
      this.sentinel = null;
      await s?.release().catch(() => undefined);
      this.onChange(false, null);
    }
  }

  private async acquire(): Promise<void> {
    if (!ScreenWakeLock.supported || this.sentinel) return;
    try {
      const s = await navigator.wakeLock.request("screen");
      this.sentinel = s;
      s.addEventListener("release", () => {
        if (this.sentinel === s) this.sentinel = null;
        this.onChange(false, null);
      });
      this.onChange(true, null);
    } catch (err) {
      this.onChange(false, err instanceof Error ? err.message : String(err));
    }
  }
}
