# Shared by the benchmark scripts (loadbench.sh, callgrind.sh, cpu_per_request.sh); sourced.

# collect_cookies PORT COUNT FILE: COUNT session cookies (`name=value`, one per line) from the
# benchmark server's `GET /init` into FILE, which wrk's rotate.lua then sends in turn. Variants
# without sessions still get a cookie of an id's size each, like a real browser would send.
collect_cookies() {
  local port=$1 count=$2 file=$3 i
  : >"$file"
  for _ in $(seq "$count"); do
    curl -s -D - -o /dev/null "http://127.0.0.1:$port/init" \
      | tr -d '\r' | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' >>"$file"
  done
  [ -s "$file" ] || for i in $(seq "$count"); do printf 'visitor=%043d\n' "$i" >>"$file"; done
}
