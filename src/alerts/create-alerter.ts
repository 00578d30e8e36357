import type { Redis } from "ioredis";
import type { Config } from "../config/env.js";
import type { Logger } from "../logging.js";
import { LogChannel, WebhookChannel, type AlertChannel } from "./alert-channels.js";
import { AlertState } from "./alert-state.js";
import { Alerter } from "./alerter.js";

/** The log channel always; the webhook when VK_ALERT_WEBHOOK_URL is set. State under the queue prefix. */
export function createAlerter(
  config: Config,
  redis: Redis,
  logger: Logger,
  state = new AlertState(redis, config.queuePrefix, config.alerts.stateTtlMs),
): Alerter {
  const channels: AlertChannel[] = [new LogChannel(logger)];
  const webhook = config.alerts.webhook;
  if (webhook) channels.push(new WebhookChannel({ ...webhook, timeoutMs: config.alerts.webhookTimeoutMs }, logger));
  return new Alerter(state, channels, logger);
}
