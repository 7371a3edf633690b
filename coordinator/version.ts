/** The coordinator's release, as the health check, the status and the report name it. */
export const VERSION = "0.1.0";
