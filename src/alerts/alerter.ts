import type { Logger } from "../logging.js";
import type { Alert, AlertChannel } from "./alert-channels.js";
import type { AlertState } from "./alert-state.js";

export interface Observation {
  check: string;
  subject: string;
  ok: boolean;
  /** Consecutive failures that make the alert fire. */
  threshold: number;
  /** What failed, or the figure that passed, in a few words. */
  summary: string;
  details?: Record<string, unknown>;
}

/** Turns observations into alerts: fire after N consecutive failures, once; once more on recovery; never repeat. */
export class Alerter {
  constructor(
    private readonly state: AlertState,
    private readonly channels: AlertChannel[],
    private readonly logger: Logger,
  ) {}

  async observe(observation: Observation, now: Date = new Date()): Promise<Alert | undefined> {
    const { check, subject, ok, threshold, summary } = observation;
    let transition;
    try {
      transition = await this.state.observe(check, subject, ok, threshold);
    } catch (error) {
      // One line, no stack: this happens while Redis is away, where every log line must stay a single JSON line.
      const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
      this.logger.error({ reason, check, subject }, "alert state unavailable; observation dropped");
      return undefined;
    }
    if (!transition) return undefined;
    const alert: Alert = {
      transition,
      check,
      subject,
      text:
        transition === "fire"
          ? `🔴 vectorkeeper: ${check} failing for ${subject} (${threshold} in a row): ${summary}`
          : `✅ vectorkeeper: ${check} recovered for ${subject}: ${summary}`,
      details: observation.details ?? {},
      at: now.toISOString(),
    };
    await Promise.all(this.channels.map((channel) => channel.send(alert)));
    return alert;
  }
}
