#!/usr/bin/python3
"""Interop client: clone, fetch and push to skillsd with a git library that is not
the git CLI. Run by tests/interop.rs with Debian's python3 (python3-dulwich,
python3-pygit2); prints one JSON object with what it saw.

usage: client.py dulwich|pygit2 URL WORKDIR PRIVATE_KEY PUBLIC_KEY NAME
GIT_SSH_COMMAND must carry the key and port for dulwich (it runs ssh); pygit2 uses
libgit2's own SSH (libssh2) with the key files and the port from the URL.
"""
import io
import json
import os
import sys


def skill(title):
    return "---\ntitle: %s\nstatus: DRAFT\n---\n\n# %s\n" % (title, title)


def run_dulwich(url, work, name):
    from dulwich import porcelain
    from dulwich.repo import Repo

    out = {}
    a = os.path.join(work, "a")
    b = os.path.join(work, "b")
    porcelain.clone(url, a, errstream=open(os.devnull, "wb"))
    porcelain.clone(url, b, errstream=open(os.devnull, "wb"))
    out["cloned_head"] = Repo(a).head().decode()

    path = "skills/interop/%s.md" % name
    os.makedirs(os.path.join(a, "skills/interop"), exist_ok=True)
    with open(os.path.join(a, path), "w") as f:
        f.write(skill("Pushed by dulwich"))
    porcelain.add(a, [os.path.join(a, path)])
    sha = porcelain.commit(a, message=b"dulwich push", author=b"D <d@example.com>",
                           committer=b"D <d@example.com>")
    porcelain.push(a, url, b"refs/heads/main:refs/heads/main", errstream=open(os.devnull, "wb"))
    out["pushed"] = sha.decode()

    porcelain.fetch(b, "origin", errstream=open(os.devnull, "wb"))
    out["fetched"] = Repo(b).refs[b"refs/remotes/origin/main"].decode()

    bad = "skills/interop/%s-bad.md" % name
    with open(os.path.join(a, bad), "w") as f:
        f.write("no frontmatter\n")
    porcelain.add(a, [os.path.join(a, bad)])
    porcelain.commit(a, message=b"bad", author=b"D <d@example.com>", committer=b"D <d@example.com>")
    # dulwich reports a refused ref on its error stream (newer versions raise).
    err = io.BytesIO()
    try:
        porcelain.push(a, url, b"refs/heads/main:refs/heads/main", errstream=err)
        text = err.getvalue().decode(errors="replace")
        out["bad_push"] = ("refused: " + text) if "failed" in text else "accepted"
    except Exception as e:
        out["bad_push"] = "refused: %s" % e
    return out


def run_pygit2(url, work, private, public, name):
    import pygit2

    class Callbacks(pygit2.RemoteCallbacks):
        def __init__(self):
            super().__init__(credentials=pygit2.Keypair("git", public, private, ""))
            self.rejected = {}

        def certificate_check(self, certificate, valid, host):
            return True

        def push_update_reference(self, refname, message):
            if message:
                self.rejected[refname] = message

    out = {}
    a = os.path.join(work, "a")
    b = os.path.join(work, "b")
    ra = pygit2.clone_repository(url, a, callbacks=Callbacks())
    rb = pygit2.clone_repository(url, b, callbacks=Callbacks())
    out["cloned_head"] = str(ra.head.target)

    def commit(path, content, message):
        full = os.path.join(a, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(content)
        ra.index.add(path)
        ra.index.write()
        tree = ra.index.write_tree()
        sig = pygit2.Signature("P", "p@example.com")
        return ra.create_commit("HEAD", sig, sig, message, tree, [ra.head.target])

    sha = commit("skills/interop/%s.md" % name, skill("Pushed by pygit2"), "pygit2 push")
    cb = Callbacks()
    ra.remotes["origin"].push(["refs/heads/main:refs/heads/main"], callbacks=cb)
    out["pushed"] = str(sha)
    if cb.rejected:
        out["push_rejected"] = cb.rejected

    rb.remotes["origin"].fetch(callbacks=Callbacks())
    out["fetched"] = str(rb.references["refs/remotes/origin/main"].target)

    commit("skills/interop/%s-bad.md" % name, "no frontmatter\n", "bad")
    cb = Callbacks()
    try:
        ra.remotes["origin"].push(["refs/heads/main:refs/heads/main"], callbacks=cb)
        out["bad_push"] = "refused: %s" % cb.rejected if cb.rejected else "accepted"
    except Exception as e:
        out["bad_push"] = "refused: %s" % e
    return out


def main():
    lib, url, work, private, public, name = sys.argv[1:7]
    if lib == "dulwich":
        out = run_dulwich(url, work, name)
    else:
        out = run_pygit2(url, work, private, public, name)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
