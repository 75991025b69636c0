# One rule per table of params.yaml `tables` (named after it, as its DVC stage is).
for table, rows in config["tables"].items():

    rule:
        name:
            table
        input:
            metrics=[f"reports/metrics/{row['model']}.json" for row in rows],
        output:
            f"reports/{table}.csv",
        params:
            table=table,  # the shell command runs after the loop: it must not read the loop variable
            tracked=params_of(f"tables.{table}"),
        log:
            f"{DATA}/logs/{table}.log",
        shell:
            "python stages/table.py --table {params.table} --metrics {input.metrics} --out {output} --log {log}"
