rule table3:
    input:
        metrics=[f"reports/metrics/{row['model']}.json" for row in config["table3"]],
    output:
        "reports/table3.csv",
    params:
        tracked=params_of("table3"),
    log:
        f"{DATA}/logs/table3.log",
    shell:
        "python stages/table3.py --metrics {input.metrics} --out {output} --log {log}"
