/** edgepool's release (package.json's version; tests/unit/launcher.test.ts checks they match): the health check, the status and the report name it. */
export const VERSION = "0.1.0";
