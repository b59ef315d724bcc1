"""nFamily scheduler worker stand-in: polls scheduler.jobs every 2 s; no HTTP server."""
import time

import psycopg2

from . import common

HANDLERS = {
    "token.cleanup": "SELECT auth.cleanup_expired_tokens()",
    "audit.cleanup": None,
    "media.process": None,
}


def run_once():
    conn = common.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, job_type FROM scheduler.jobs WHERE status = 'pending' AND run_at <= now() "
                        "ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED")
            job = cur.fetchone()
            if job is None:
                conn.commit()
                return False
            statement = HANDLERS.get(job[1])
            if job[1] not in HANDLERS:
                cur.execute("UPDATE scheduler.jobs SET status = 'failed', last_error = %s, updated_at = now() WHERE id = %s",
                            ("unknown job type %s" % job[1], job[0]))
            else:
                if statement:
                    cur.execute(statement)
                cur.execute("UPDATE scheduler.jobs SET status = 'completed', updated_at = now() WHERE id = %s", (job[0],))
            common.log("job %s (%s) done" % (job[0], job[1]))
        conn.commit()
        return True
    finally:
        conn.close()


def main():
    common.log("scheduler worker started (poll 2s)")
    while True:
        try:
            while run_once():
                pass
        except psycopg2.Error as exc:
            common.log("ERROR scheduler poll failed: %s" % str(exc).strip().splitlines()[0])
        time.sleep(2)


if __name__ == "__main__":
    main()
