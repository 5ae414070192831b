# --- the guard of every client over the link between servers (infra/link/stall-guard.bash) ---
# Rendered into the backup script of a stack with a replica (its dumps over
# the link) and into replica.sh (its queries over the link: status, the
# backup's check of the replica, seeding's position reads).
# The client runs under this guard, inside the database container (perl-base
# is Essential in every Debian and Ubuntu image): the guard runs the client
# and passes its output on; when nothing comes for $1 seconds it kills the
# client and exits 124. A server that loses power sends nothing, not even a
# reset, and a client would wait for TCP's keepalive (two hours): the
# backup's lock held, a status that never answers. With the guard the caller
# fails, says why and goes on (the backup pings the failure URL).
# shellcheck disable=SC2016 # perl's variables, not the shell's
readonly LINK_STALL_GUARD='
my ($stall, @command) = @ARGV;
my $pid = open(my $in, "-|") // die "link guard: fork: $!\n";
if ($pid == 0) { exec { $command[0] } @command or die "link guard: cannot run $command[0]: $!\n" }
binmode $in; binmode STDOUT;
$SIG{ALRM} = sub {
  kill "KILL", $pid;
  print STDERR "nothing came over the link for $stall s (the server at its other end, or the link, is gone): the client was stopped\n";
  exit 124;
};
while (1) {
  alarm $stall;
  my $n = sysread $in, my $block, 1 << 20;
  alarm 0;
  die "link guard: read: $!\n" unless defined $n;
  last if $n == 0;
  for (my $at = 0; $at < $n;) {
    my $written = syswrite STDOUT, $block, $n - $at, $at;
    die "link guard: write: $!\n" unless defined $written;
    $at += $written;
  }
}
close $in;
exit($? & 127 ? 128 + ($? & 127) : $? >> 8);
'
