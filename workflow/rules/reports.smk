PAPER_TABLES = "references/paper_tables.yaml"


# One rule per table of params.yaml `tables` (named after it, as its DVC stage is).
for table, rows in config["tables"].items():

    rule:
        name:
            table
        input:
            metrics=[f"reports/metrics/{model}.json" for model in dict.fromkeys(row["model"] for row in rows)],
            paper=PAPER_TABLES,
        output:
            f"reports/{table}.csv",
        params:
            table=table,  # the shell command runs after the loop: it must not read the loop variable
            tracked=params_of(f"tables.{table}"),
        log:
            f"{DATA}/logs/{table}.log",
        shell:
            "python stages/table.py --table {params.table} --metrics {input.metrics} --paper {input.paper}"
            " --out {output} --log {log}"


rule tables_markdown:
    input:
        tables=[f"reports/{table}.csv" for table in config["tables"]],
        paper=PAPER_TABLES,
    output:
        "reports/tables.md",
    params:
        tracked=params_of("dataset"),
    log:
        f"{DATA}/logs/tables_markdown.log",
    shell:
        "python stages/tables_markdown.py --tables {input.tables} --paper {input.paper} --out {output} --log {log}"
