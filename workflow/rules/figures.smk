# Figures drawn from trained models and their banks: 4 and 14 (softmax vs SegSort side by side),
# 8 (FINCH groups of prototypes), 9 and 10 (t-SNE maps of prototypes). One rule per figure, named after
# it as its DVC stage is.
COMPARISONS = config["comparison_figures"]
PROTOTYPE_FIGURES = config["prototype_figures"]["models"]
if IMAGES_ONLY:  # no labels: the groups found among the unsupervised runs' prototypes (as Figures 8 and 10 show)
    PROTOTYPE_FIGURES = {f"{kind}_{run}": run for run in config["unsupervised_runs"] for kind in ("fig8_finch", "fig10_tsne")}

for figure, spec in COMPARISONS.items():

    rule:
        name:
            figure
        input:
            models=[f"{DATA}/models/{model}/model.pt" for pair in spec["pairs"] for model in pair],
            banks=[f"{DATA}/banks/{segsort}.h5" for _, segsort in spec["pairs"]],
            dataset=f"{DATA}/dataset",
        output:
            f"{REPORTS}/figures/{figure}.png",
        params:
            figure=figure,  # the shell command runs after the loop: it must not read the loop variables
            tracked=params_of(*EVAL_PARAMS, f"comparison_figures.{figure}"),
        threads: config["threads"]
        log:
            f"{DATA}/logs/{figure}.log",
        shell:
            "python stages/comparison_figure.py --figure {params.figure} --models-dir {DATA}/models"
            " --banks-dir {DATA}/banks --dataset-root {input.dataset} --out {output} --log {log}"


for figure, model in PROTOTYPE_FIGURES.items():

    rule:
        name:
            figure
        input:
            model=f"{DATA}/models/{model}/model.pt",
            bank=f"{DATA}/banks/{model}.h5",
            dataset=f"{DATA}/dataset",
        output:
            f"{REPORTS}/figures/{figure}.png",
        params:
            script="finch_figure" if "finch" in figure else "tsne_figure",
            tracked=params_of("seed", "threads", f"unsupervised_runs.{model}" if IMAGES_ONLY else
                              f"prototype_figures.models.{figure}",
                              f"prototype_figures.{'finch' if 'finch' in figure else 'tsne'}"),
        log:
            f"{DATA}/logs/{figure}.log",
        shell:
            "python stages/{params.script}.py --model {input.model} --bank {input.bank}"
            " --dataset-root {input.dataset} --out {output} --log {log}"
