"""nself's output style: box headers, coloured ✓/✗ lines, a spinner that writes \r.

Colour is always on, as in status/logs/health of 0.9.9 (they restore COLOR_* even
without a TTY), so callers must strip ANSI and \r.
"""
import sys

GREEN, RED, YELLOW, BLUE, CYAN, GREY, BOLD, RESET = (
    "\033[0;32m", "\033[0;31m", "\033[1;33m", "\033[0;34m", "\033[1;36m", "\033[1;90m", "\033[1m", "\033[0m")


def out(text=""):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def header(title, subtitle=""):
    width = 60
    out(BLUE + "╔" + "═" * width + "╗" + RESET)
    out(BLUE + "║" + RESET + BOLD + (" nself " + title).ljust(width) + RESET + BLUE + "║" + RESET)
    if subtitle:
        out(BLUE + "║" + RESET + (" " + subtitle).ljust(width) + BLUE + "║" + RESET)
    out(BLUE + "╚" + "═" * width + "╝" + RESET)
    out()


def spinner(text):
    for frame in "⠋⠙⠹":
        sys.stdout.write("\r%s %s" % (frame, text))
    sys.stdout.write("\r" + " " * (len(text) + 2) + "\r")
    sys.stdout.flush()


def ok(text):
    out(GREEN + "✓" + RESET + " " + text)


def info(text):
    out(BLUE + "ℹ" + RESET + " " + text)


def step(text):
    out(CYAN + "→" + RESET + " " + text)


def error(text):
    sys.stderr.write(RED + "✗" + RESET + " " + text + "\n")
    sys.stderr.flush()


def warn(text):
    sys.stderr.write(YELLOW + "⚠" + RESET + " " + text + "\n")
    sys.stderr.flush()
