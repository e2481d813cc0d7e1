# throughput.gp: make bench's chart, one-way throughput by payload size per
# system (medians), messages per second and MB/s side by side, log scales.
#   gnuplot -e "datafile='build/bench/throughput.dat'; outfile='x.png'" \
#           tests/bench/throughput.gp
# Data columns: size label, msgs/s of zmq redis rc_local rc_mesh rc_proxy,
# then MB/s of the same five.
set terminal pngcairo size 1200,520 font "sans,10"
set output outfile
set multiplot layout 1,2 title "roomcast: one-way throughput by payload size (make bench, medians)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set grid ytics
set key top right font "sans,9"
set xlabel "payload"
set format y "%.0s%c"

set title "messages per second"
set ylabel "msgs/s"
plot datafile using 2:xtic(1) title "raw ZeroMQ", \
     '' using 3 title "Redis pub/sub", \
     '' using 4 title "roomcast local", \
     '' using 5 title "roomcast mesh (A to B)", \
     '' using 6 title "roomcast proxy (A to B)"

set title "MB/s (10^6 bytes of payload)"
set ylabel "MB/s"
plot datafile using 7:xtic(1) title "raw ZeroMQ", \
     '' using 8 title "Redis pub/sub", \
     '' using 9 title "roomcast local", \
     '' using 10 title "roomcast mesh (A to B)", \
     '' using 11 title "roomcast proxy (A to B)"
unset multiplot
