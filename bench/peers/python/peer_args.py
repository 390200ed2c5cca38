"""Command line shared by the Python peer servers (same shape as chatws-bench-server)."""
import argparse


def parse_args(prog: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--mode", choices=["echo", "broadcast"], default="echo")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--max-message-size", type=int, default=16 * 1024 * 1024)
    return p.parse_args()
