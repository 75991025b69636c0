rule hed_contours:
    input:
        dataset=f"{DATA}/dataset",
    output:
        directory(f"{DATA}/hed"),
    params:
        tracked=params_of("threads", "hed"),
    threads: config["threads"]
    log:
        f"{DATA}/logs/hed_contours.log",
    shell:
        "python stages/hed_contours.py --dataset-root {input.dataset} --out {output} --log {log}"


rule pseudo_segments:
    input:
        contours=f"{DATA}/hed",
    output:
        directory(f"{DATA}/pseudo_segments"),
    params:
        tracked=params_of("pseudo_segments"),
    log:
        f"{DATA}/logs/pseudo_segments.log",
    shell:
        "python stages/pseudo_segments.py --contours {input.contours} --out {output} --log {log}"
