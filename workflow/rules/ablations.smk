# Figures 11 and 12: params.yaml `ablations.run` retrained and tested with one setting changed. Each job
# runs the same entry points as the main DAG (train, bank, metrics) with a --set override, so a value
# added to `grid_sides` or `embedding_dims` adds a job here and a matrix item in dvc.yaml.
ABLATIONS = config["ablations"]
ABLATION_RUN = config["supervised_runs"][ABLATIONS["run"]]
if (ABLATION_RUN["network"], ABLATION_RUN["init"]) != (ABLATIONS["network"], f"imagenet_{ABLATIONS['network']}"):
    raise ValueError(f"params.yaml ablations: run {ABLATIONS['run']!r} must use network {ABLATIONS['network']!r} "
                     f"and start from imagenet_{ABLATIONS['network']}")
ABLATION_PARAMS = TRAIN_PARAMS + EVAL_PARAMS[1:] + (
    "ablations", f"supervised_runs.{ABLATIONS['run']}", f"networks.{ABLATIONS['network']}", f"{PRESET}.schedules")


rule ablation_grid:
    input:
        init=f"{DATA}/models/imagenet_{ABLATIONS['network']}/model.pt",
        dataset=f"{DATA}/dataset",
    output:
        **ablation_outputs("grid"),
    wildcard_constraints:
        value=one_of(map(str, ABLATIONS["grid_sides"])),
    params:
        tracked=params_of(*ABLATION_PARAMS),
    threads: config["threads"]
    log:
        **ablation_logs("grid"),
    shell:
        ablation_commands("segsort.grid=[{wildcards.value},{wildcards.value}]", "{input.init}")


rule ablation_embedding_dim:
    input:
        dataset=f"{DATA}/dataset",
    output:
        init=f"{DATA}/ablations/embedding_dim-{{value}}/init.pt",
        **ablation_outputs("embedding_dim"),
    wildcard_constraints:
        value=one_of(map(str, ABLATIONS["embedding_dims"])),
    params:
        tracked=params_of(*ABLATION_PARAMS, "dataset", f"{PRESET}.embedding_dim", f"{PRESET}.imagenet_backbones"),
    threads: config["threads"]
    log:
        init=f"{DATA}/logs/ablations/embedding_dim-{{value}}/init.log",
        **ablation_logs("embedding_dim"),
    shell:
        f"python stages/imagenet_model.py --network {ABLATIONS['network']} --set embedding_dim={{wildcards.value}}"
        " --out {output.init} --log {log.init} && "
        + ablation_commands("embedding_dim={wildcards.value}", "{output.init}")


# Figure -> (sweep, its values in `ablations`, the swept quantity on the x axis); one rule per figure,
# named after it as its DVC stage is.
ABLATION_FIGURES = {"fig11_clusters": ("grid", "grid_sides", "clusters"),
                    "fig12_embedding_dim": ("embedding_dim", "embedding_dims", "embedding_dim")}

for figure, (sweep, values_key, quantity) in ABLATION_FIGURES.items():

    rule:
        name:
            figure
        input:
            sweep=[f"{REPORTS}/sweeps/{sweep}/{value}.json" for value in ABLATIONS[values_key]],
            reference=f"{REPORTS}/metrics/{ABLATIONS['run']}.json",
        output:
            curve=f"{REPORTS}/sweeps/{figure}.csv",
            figure=f"{REPORTS}/figures/{figure}.png",
        params:
            quantity=quantity,  # the shell command runs after the loop: it must not read the loop variables
            curve_axes=(quantity, "mIoU"),  # the curve's columns DVC plots (scripts/write_dvc_yaml.py)
            tracked=params_of("ablations"),
        log:
            f"{DATA}/logs/{figure}.log",
        shell:
            "python stages/ablation_figure.py --quantity {params.quantity} --metrics {input.sweep}"
            " --reference {input.reference} --curve {output.curve} --out {output.figure} --log {log}"
