import { ConfigError } from "../../config/config-error.js";

/** Statuses a server (or a gateway in front of it) refuses credentials with. */
export const isRefusal = (status: number): boolean => status === 401 || status === 403;

/**
 * What a refused request says, whichever path it took: the server (its redacted URL) and the variables to fix. A
 * ConfigError: sending the same credentials again cannot succeed, so jobs do not retry it and the CLI exits 2.
 */
export const credentialsRefused = (where: string, status: number): ConfigError =>
  new ConfigError(`Chroma at ${where} refused the credentials (${status}); check the user:password in CHROMA_URL or CHROMA_TOKEN`);
