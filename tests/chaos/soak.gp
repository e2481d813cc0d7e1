# gnuplot: the soak's memory and delivery rate over time.
#   gnuplot -e "csv='build/soak/samples.csv'; png='build/soak/soak.png'; \
#               nodes=5; title='...'" tests/chaos/soak.gp
# samples.csv columns: time_s, rss_kb_node0..N-1, published, delivered,
# publish_per_s, deliver_per_s, restarts, duplicates, lost, excused,
# env_duplicates, gaps, missed, live_peers_min
if (!exists("csv")) csv = 'build/soak/samples.csv'
if (!exists("png")) png = 'build/soak/soak.png'
if (!exists("nodes")) nodes = 5
if (!exists("title")) title = 'roomcast soak'
set datafile separator ','
set terminal pngcairo size 1200,900 font ',10'
set output png
set multiplot layout 3,1 title title
set key outside right top
set grid
set xlabel 'time (min)'
set xrange [0:*]
set autoscale xfix

set ylabel 'RSS (MiB)'
set yrange [0:*]
plot for [i=0:nodes-1] csv using ($1/60):(column(2+i) > 0 ? column(2+i)/1024.0 : 1/0) \
     every ::1 with lines lw 1.5 title sprintf('node%d%s', i, i == 0 ? ' (witness)' : '')

set ylabel 'messages/s'
plot csv using ($1/60):(column(nodes+5)) every ::2 with lines lw 1.5 title 'delivered', \
     csv using ($1/60):(column(nodes+4)) every ::2 with lines lw 1.5 title 'published'

set ylabel 'count'
set y2label 'restarts'
set y2tics
plot csv using ($1/60):(column(nodes+7)) every ::1 with lines lw 1.5 title 'duplicates', \
     csv using ($1/60):(column(nodes+8)) every ::1 with lines lw 1.5 title 'lost (both up)', \
     csv using ($1/60):(column(nodes+6)) every ::1 axes x1y2 with steps lw 1 title 'restarts'
unset multiplot
