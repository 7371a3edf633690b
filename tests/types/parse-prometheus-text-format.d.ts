/** Types for parse-prometheus-text-format 1.x, which ships none (its output follows prom2json). */
declare module "parse-prometheus-text-format" {
  /** One series; numbers stay strings as they appear in the text ("+Inf", "1e3"). */
  interface PrometheusSample {
    value?: string;
    labels?: Record<string, string>;
    /** Histograms: cumulative count by `le`. */
    buckets?: Record<string, string>;
    /** Summaries: value by `quantile`. */
    quantiles?: Record<string, string>;
    count?: string;
    sum?: string;
  }

  interface PrometheusFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
    metrics: PrometheusSample[];
  }

  function parsePrometheusTextFormat(text: string): PrometheusFamily[];
  namespace parsePrometheusTextFormat {
    export type { PrometheusFamily, PrometheusSample };
  }
  export = parsePrometheusTextFormat;
}
