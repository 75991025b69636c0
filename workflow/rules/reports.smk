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
            tracked=params_of(f"tables.{table}"),
        log:
            f"{DATA}/logs/{table}.log",
        shell:
            f"python stages/table.py --table {table} --metrics {{input.metrics}} --out {{output}} --log {{log}}"
