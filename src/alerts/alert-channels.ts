import { DEFAULTS } from "../config/defaults.js";
import type { Logger } from "../logging.js";
import { withRetries } from "../retries.js";
import { redactUrl } from "../redact.js";

export interface Alert {
  /** `fire` when a check starts failing, `recover` when it passes again. */
  transition: "fire" | "recover";
  check: string;
  subject: string;
  /** One human line, also the webhook's Slack-compatible `text`. */
  text: string;
  details: Record<string, unknown>;
  at: string;
}

export interface AlertChannel {
  send(alert: Alert): Promise<void>;
}

/** Always on: one structured log line per alert. */
export class LogChannel implements AlertChannel {
  constructor(private readonly logger: Logger) {}
  async send(alert: Alert): Promise<void> {
    this.logger[alert.transition === "fire" ? "error" : "info"]({ alert }, alert.text);
  }
}

export interface WebhookSettings {
  url: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** @defaultValue DEFAULTS.alerts.webhookAttempts */
  attempts?: number;
  /** First retry delay, doubled on each further retry. @defaultValue DEFAULTS.alerts.webhookRetryBaseMs */
  retryBaseMs?: number;
}

/** A webhook answer worth trying again: the receiver is overloaded or failing, not refusing this request. */
class WebhookStatusError extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}
const worthRetrying = (error: unknown) => !(error instanceof WebhookStatusError) || error.status >= 500 || error.status === 429;

/** POSTs `{text, alert}`: Slack, Mattermost and most chat webhooks read `text`; anything else can read `alert`. */
export class WebhookChannel implements AlertChannel {
  constructor(
    private readonly settings: WebhookSettings,
    private readonly logger: Logger,
  ) {}

  async send(alert: Alert): Promise<void> {
    const retries = { attempts: this.settings.attempts ?? DEFAULTS.alerts.webhookAttempts, retryBaseMs: this.settings.retryBaseMs ?? DEFAULTS.alerts.webhookRetryBaseMs };
    try {
      await withRetries(
        retries,
        async () => {
          const response = await fetch(this.settings.url, {
            method: "POST",
            headers: { "content-type": "application/json", ...this.settings.headers },
            body: JSON.stringify({ text: alert.text, alert }),
            signal: AbortSignal.timeout(this.settings.timeoutMs),
          });
          await response.body?.cancel();
          if (!response.ok) throw new WebhookStatusError(response.status);
        },
        worthRetrying,
      );
    } catch (error) {
      // The webhook's URL often carries its secret: only its redacted form is logged.
      this.logger.error(
        { webhook: redactWebhook(this.settings.url), reason: error instanceof Error ? error.message : String(error), check: alert.check },
        "alert webhook failed; the alert is in this log",
      );
    }
  }
}

/** `https://hooks.slack.com/services/T0/B0/secret` → `https://hooks.slack.com/…` */
export function redactWebhook(url: string): string {
  try {
    const parsed = new URL(redactUrl(url));
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return "[webhook]";
  }
}
