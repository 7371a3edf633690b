/**
 * zod compiles fast paths with `new Function` when it may; the join page's CSP allows no
 * eval, so tell zod not to try (imported first by both entry points).
 */
import { z } from "zod";

z.config({ jitless: true });
