HELP = ("generate synthetic coughs, prepare them, train report 1's small CNN, evaluate with plots, "
        "export to TFLite and predict (about 2 minutes on 2 CPU cores)")
EXAMPLE = "coughclf demo --out saved_models/demo"


def add_arguments(parser):
    parser.add_argument("--out", default="saved_models/demo", help="folder for the data, cache and runs")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    parser.add_argument("--clips-per-class", type=int, default=60, help="synthetic clips per class (default 60)")
    parser.add_argument("--no-export", action="store_true", help="stop after evaluation")


def run(args):
    from coughclf.demo import run_demo

    run_demo(args.out, epochs=args.epochs, clips_per_class=args.clips_per_class, export=not args.no_export)
