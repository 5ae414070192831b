#!/bin/sh
# /app/run_metabase.sh of the Metabase test image, as the official image's:
# listens on every interface unless MB_JETTY_HOST says otherwise; started as
# root, it creates the user metabase (MUID, MGID; 2000 by default) and runs
# Metabase as that user with `su`, keeping the environment (the MB_*
# variables the container's entrypoint exported); started as another user,
# it runs Metabase as that user. Metabase here is the stand-in in
# test/docker/images/app/metabase.
if [ -z "${MB_JETTY_HOST:-}" ]; then
  export MB_JETTY_HOST=0.0.0.0
fi

if [ "$(id -u)" -ne 0 ]; then
  exec /app/metabase "$@"
fi

MGID=${MGID:-2000}
MUID=${MUID:-2000}
if ! grep -q '^metabase:' /etc/group; then
  echo "metabase:x:$MGID:" >>/etc/group
fi
if ! grep -q '^metabase:' /etc/passwd; then
  echo "metabase:x:$MUID:$MGID:metabase:/home/metabase:/bin/sh" >>/etc/passwd
  mkdir -p /home/metabase
  chown "$MUID:$MGID" /home/metabase
fi

# (The official script hands its arguments to Metabase; this stand-in takes none.)
exec su -s /bin/sh -c 'exec /app/metabase' metabase
