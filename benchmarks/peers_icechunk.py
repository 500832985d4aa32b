"""VirtualiZarr 2.8's Icechunk pipeline, one process, for run_peers.py's ``icechunk`` workload.

    /work/peers-venv/bin/python benchmarks/peers_icechunk.py CORPUS REPO_DIR

Virtualize the 365 daily files (loading time/lat/lon, as /work/shared/bench/peers.py does),
concatenate along time, ``vds.vz.to_icechunk(session.store)`` into a new local repository
with a virtual chunk container for the corpus, commit. Needs icechunk in the peers' venv.
"""

import glob
import os
import sys
import warnings

warnings.filterwarnings("ignore")


def main(corpus: str, repo_dir: str) -> None:
    import icechunk
    import xarray as xr
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr.parsers import HDFParser

    from virtualizarr import open_virtual_dataset

    icechunk.set_logs_filter("error")
    files = sorted(glob.glob(os.path.join(corpus, "daily", "*.nc")))
    reg = ObjectStoreRegistry({"file://": LocalStore()})
    parser = HDFParser()
    dss = [
        open_virtual_dataset(
            url="file://" + f,
            parser=parser,
            registry=reg,
            loadable_variables=["time", "lat", "lon"],
        )
        for f in files
    ]
    ds = xr.concat(dss, dim="time", coords="minimal", compat="override", combine_attrs="override")
    prefix = "file://" + os.path.abspath(os.path.join(corpus, "daily")) + "/"
    cfg = icechunk.RepositoryConfig.default()
    cfg.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[7:]))
    )
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(repo_dir), config=cfg)
    session = repo.writable_session("main")
    ds.vz.to_icechunk(session.store)
    session.commit("365 days")


if __name__ == "__main__":
    main(*sys.argv[1:3])
