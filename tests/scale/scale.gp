# scale.gp: make scale's chart. For each sidecar (sorted), the time from
# the last start until it saw all others alive, and the time from a kill -9
# until it saw that sidecar dead.
#   gnuplot -e "datafile='build/scale/mesh_times.dat'; outfile='x.png'; n=100" \
#           tests/scale/scale.gp
# Data columns: rank, seconds to see all alive, seconds to see the crash.
set terminal pngcairo size 900,480 font "sans,10"
set output outfile
set title sprintf("roomcast make scale: %d sidecars on one machine, per sidecar (sorted)", n)
set xlabel "sidecars (sorted by time)"
set ylabel "seconds"
set grid
set key top left
set yrange [0:*]
plot datafile using 1:2 with steps lw 2 title "last start -> sees all alive (target <= 3 s)", \
     '' using 1:3 with steps lw 2 title "kill -9 -> sees it dead (target <= 6 s)", \
     3 with lines dt 2 lc rgb "gray" notitle, \
     6 with lines dt 2 lc rgb "gray" notitle
