// What jicofo reads from a Jingle IQ: the differential test's reference (tests/jingle_differential.rs).
//
// Reads IQ stanzas from stdin, each as a line with its length in UTF-8 bytes followed by that many
// bytes, parses each with Smack and jitsi-xmpp-extensions' own providers registered as jicofo registers
// them, and prints one JSON line per stanza:
//   {"jingle":true,"action":"source-add","sources":[{"ssrc":"1","media":"audio","name":"n",
//    "videoType":null,"msid":null}],"groups":[{"semantics":"FID","media":"video","ssrcs":["1","2"]}]}
//   {"jingle":false}                  the IQ is not a Jingle IQ to jicofo (no JingleIQ came out)
// (a Jingle IQ of another type than set, or another action, lists no sources: jicofo takes none from it)
//   {"error":"..."}                   Smack or jicofo's source reading threw: jicofo takes nothing
// The JVM starts once per run; a stanza's failure never ends the run.
//
// Facts it rests on (jitsi/jicofo at 7ebb13dc353953abaeec2d9ee42b735f39eaa454):
//  * jicofo/src/main/kotlin/org/jitsi/jicofo/xmpp/Smack.kt `initializeSmack` calls
//    org.jitsi.xmpp.Smack.initialize and `registerXmppExtensions`, which registers JingleIQProvider
//    (whose constructor registers the description, source, ssrc-group and parameter providers) and a
//    set of other extension providers. Every registered provider matters: DefaultPacketExtensionProvider
//    attaches an element it has a provider for and descends into one it has none for, so `register`
//    below makes the same registrations in the same order.
//  * jicofo-common/src/main/kotlin/org/jitsi/jicofo/xmpp/jingle/JingleSession.kt `doProcessIq` passes
//    `iq.contentList` to the request handler for session-accept, transport-accept, source-add/addsource
//    and source-remove/removesource; jicofo/src/main/kotlin/org/jitsi/jicofo/conference/Participant.kt
//    turns those contents into sources with `EndpointSourceSet.fromJingle`.
//  * jicofo-common/src/main/kotlin/org/jitsi/jicofo/conference/source/EndpointSourceSet.kt
//    `fromJingle`, Source.kt `Source(mediaType, SourcePacketExtension)`, SsrcGroup.kt
//    `fromPacketExtension`, SsrcGroupSemantics.kt and VideoType.kt: `fromJingle` below computes the
//    same set (rewritten in Java, not copied).
package org.podium.jicofoparser;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

import org.jitsi.utils.MediaType;
import org.jitsi.xmpp.extensions.DefaultPacketExtensionProvider;
import org.jitsi.xmpp.extensions.colibri.ColibriStatsIqProvider;
import org.jitsi.xmpp.extensions.colibri.ForcefulShutdownIqProvider;
import org.jitsi.xmpp.extensions.colibri.GracefulShutdownIqProvider;
import org.jitsi.xmpp.extensions.colibri.SourcePacketExtension;
import org.jitsi.xmpp.extensions.colibri2.IqProviderUtils;
import org.jitsi.xmpp.extensions.health.HealthCheckIQProvider;
import org.jitsi.xmpp.extensions.health.HealthStatusPacketExt;
import org.jitsi.xmpp.extensions.jibri.JibriBusyStatusPacketExt;
import org.jitsi.xmpp.extensions.jibri.JibriIq;
import org.jitsi.xmpp.extensions.jibri.JibriIqProvider;
import org.jitsi.xmpp.extensions.jibri.JibriStatusPacketExt;
import org.jitsi.xmpp.extensions.jingle.ContentPacketExtension;
import org.jitsi.xmpp.extensions.jingle.JingleAction;
import org.jitsi.xmpp.extensions.jingle.JingleIQ;
import org.jitsi.xmpp.extensions.jingle.JingleIQProvider;
import org.jitsi.xmpp.extensions.jingle.ParameterPacketExtension;
import org.jitsi.xmpp.extensions.jingle.RtpDescriptionPacketExtension;
import org.jitsi.xmpp.extensions.jingle.SourceGroupPacketExtension;
import org.jitsi.xmpp.extensions.jitsimeet.AudioMutedExtension;
import org.jitsi.xmpp.extensions.jitsimeet.BridgeSessionPacketExtension;
import org.jitsi.xmpp.extensions.jitsimeet.ConferenceIqProvider;
import org.jitsi.xmpp.extensions.jitsimeet.FeatureExtension;
import org.jitsi.xmpp.extensions.jitsimeet.FeaturesExtension;
import org.jitsi.xmpp.extensions.jitsimeet.IceStatePacketExtension;
import org.jitsi.xmpp.extensions.jitsimeet.JitsiParticipantCodecList;
import org.jitsi.xmpp.extensions.jitsimeet.JitsiParticipantRegionPacketExtension;
import org.jitsi.xmpp.extensions.jitsimeet.JsonMessageExtension;
import org.jitsi.xmpp.extensions.jitsimeet.LoginUrlIqProvider;
import org.jitsi.xmpp.extensions.jitsimeet.LogoutIqProvider;
import org.jitsi.xmpp.extensions.jitsimeet.StartMutedProvider;
import org.jitsi.xmpp.extensions.jitsimeet.StatsId;
import org.jitsi.xmpp.extensions.jitsimeet.UserInfoPacketExt;
import org.jitsi.xmpp.extensions.jitsimeet.VideoMutedExtension;
import org.jitsi.xmpp.extensions.rayo.RayoIqProvider;
import org.jivesoftware.smack.packet.IQ;
import org.jivesoftware.smack.packet.Stanza;
import org.jivesoftware.smack.packet.XmlEnvironment;
import org.jivesoftware.smack.provider.ProviderManager;
import org.jivesoftware.smack.util.PacketParserUtils;
import org.jivesoftware.smack.xml.XmlPullParser;

public final class JicofoSources
{
    private JicofoSources()
    {
    }

    /** The actions whose contents jicofo reads sources from (JingleSession.kt `doProcessIq`). */
    private static final Set<JingleAction> SOURCE_ACTIONS = Set.of(
        JingleAction.SESSION_ACCEPT, JingleAction.TRANSPORT_ACCEPT,
        JingleAction.ADDSOURCE, JingleAction.SOURCEADD,
        JingleAction.REMOVESOURCE, JingleAction.SOURCEREMOVE);

    /** jicofo's Smack set-up, as jicofo/src/main/kotlin/org/jitsi/jicofo/xmpp/Smack.kt makes it. */
    private static void register()
    {
        // initializeSmack: the parsing limits and the stringprep jicofo uses by default
        // (xmpp.use-jitsi-jid-validation is true in jicofo's reference.conf).
        org.jitsi.xmpp.Smack.INSTANCE.initialize(true);
        // registerXmppExtensions, in its order.
        new ConferenceIqProvider();
        new LoginUrlIqProvider();
        new LogoutIqProvider();
        GracefulShutdownIqProvider.registerIQProvider();
        ForcefulShutdownIqProvider.registerIQProvider();
        new ColibriStatsIqProvider();
        HealthCheckIQProvider.registerIQProvider();
        ProviderManager.addExtensionProvider(IceStatePacketExtension.ELEMENT, IceStatePacketExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(IceStatePacketExtension.class));
        ProviderManager.addExtensionProvider(BridgeSessionPacketExtension.ELEMENT,
            BridgeSessionPacketExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(BridgeSessionPacketExtension.class));
        ProviderManager.addIQProvider(JibriIq.ELEMENT, JibriIq.NAMESPACE, new JibriIqProvider());
        JibriStatusPacketExt.registerExtensionProvider();
        JibriBusyStatusPacketExt.registerExtensionProvider();
        HealthStatusPacketExt.registerExtensionProvider();
        ProviderManager.addExtensionProvider(UserInfoPacketExt.ELEMENT, UserInfoPacketExt.NAMESPACE,
            new DefaultPacketExtensionProvider<>(UserInfoPacketExt.class));
        ProviderManager.addExtensionProvider(JitsiParticipantRegionPacketExtension.ELEMENT,
            JitsiParticipantRegionPacketExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(JitsiParticipantRegionPacketExtension.class));
        ProviderManager.addExtensionProvider(StatsId.ELEMENT, StatsId.NAMESPACE, new StatsId.Provider());
        ProviderManager.addExtensionProvider(JitsiParticipantCodecList.ELEMENT, JitsiParticipantCodecList.NAMESPACE,
            new DefaultPacketExtensionProvider<>(JitsiParticipantCodecList.class));
        ProviderManager.addIQProvider(JingleIQ.ELEMENT, JingleIQ.NAMESPACE, new JingleIQProvider());
        ProviderManager.addExtensionProvider(JsonMessageExtension.ELEMENT, JsonMessageExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(JsonMessageExtension.class));
        ProviderManager.addExtensionProvider(FeaturesExtension.ELEMENT, FeaturesExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(FeaturesExtension.class));
        ProviderManager.addExtensionProvider(FeatureExtension.ELEMENT, FeatureExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(FeatureExtension.class));
        new RayoIqProvider().registerRayoIQs();
        org.jitsi.xmpp.Smack.INSTANCE.registerMuteIqProviders();
        StartMutedProvider.registerStartMutedProvider();
        ProviderManager.addExtensionProvider(AudioMutedExtension.ELEMENT, AudioMutedExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(AudioMutedExtension.class));
        ProviderManager.addExtensionProvider(VideoMutedExtension.ELEMENT, VideoMutedExtension.NAMESPACE,
            new DefaultPacketExtensionProvider<>(VideoMutedExtension.class));
        IqProviderUtils.registerProviders();
    }

    /** One source as jicofo's `Source` holds it. */
    private record Source(long ssrc, String media, String name, String msid, String videoType)
    {
    }

    /** One group as jicofo's `SsrcGroup` holds it. */
    private record Group(String semantics, List<Long> ssrcs, String media)
    {
    }

    /** jicofo's VideoType.parseString: case-insensitive, anything else throws. */
    private static String videoType(String text)
    {
        if (text == null)
        {
            return null;
        }
        for (String known : List.of("camera", "desktop"))
        {
            if (known.equalsIgnoreCase(text))
            {
                return known;
            }
        }
        throw new IllegalArgumentException("Invalid VideoType: " + text);
    }

    /** jicofo's SsrcGroupSemantics.fromString: SIM or FID, case-insensitive, anything else throws. */
    private static String semantics(String text)
    {
        for (String known : List.of("SIM", "FID"))
        {
            if (text != null && known.toLowerCase(Locale.ROOT).equals(text.toLowerCase(Locale.ROOT)))
            {
                return known;
            }
        }
        throw new IllegalArgumentException("Invalid ssrc-group semantics: " + text);
    }

    private static Source source(String media, SourcePacketExtension spe)
    {
        String msid = null;
        for (ParameterPacketExtension parameter : spe.getChildExtensionsOfType(ParameterPacketExtension.class))
        {
            if ("msid".equals(parameter.getName()))
            {
                msid = parameter.getValue();
                break;
            }
        }
        return new Source(spe.getSSRC(), media, spe.getName(), msid, videoType(spe.getVideoType()));
    }

    /** EndpointSourceSet.fromJingle, in Java; sets keep the first of equal elements as Kotlin's do. */
    private static void fromJingle(List<ContentPacketExtension> contents, Set<Source> sources, Set<Group> groups)
    {
        for (ContentPacketExtension content : contents)
        {
            RtpDescriptionPacketExtension rtpDesc = content.getFirstChildOfType(RtpDescriptionPacketExtension.class);
            String media = MediaType.parseString(rtpDesc != null ? rtpDesc.getMedia() : content.getName()).toString();
            if (rtpDesc != null)
            {
                for (SourcePacketExtension spe : rtpDesc.getChildExtensionsOfType(SourcePacketExtension.class))
                {
                    sources.add(source(media, spe));
                }
                for (SourceGroupPacketExtension sgpe
                    : rtpDesc.getChildExtensionsOfType(SourceGroupPacketExtension.class))
                {
                    String semantics = semantics(sgpe.getSemantics());
                    List<Long> ssrcs = new ArrayList<>();
                    for (SourcePacketExtension member : sgpe.getSources())
                    {
                        ssrcs.add(member.getSSRC());
                    }
                    groups.add(new Group(semantics, ssrcs, media));
                }
            }
            for (SourcePacketExtension spe : content.getChildExtensionsOfType(SourcePacketExtension.class))
            {
                sources.add(source(media, spe));
            }
        }
    }

    private static String describe(String xml)
    {
        Stanza stanza;
        try
        {
            XmlPullParser parser = PacketParserUtils.getParserFor(xml);
            // jicofo reads stanzas inside a jabber:client stream.
            XmlEnvironment stream = XmlEnvironment.builder().withNamespace("jabber:client").build();
            stanza = PacketParserUtils.parseStanza(parser, stream);
        }
        catch (Exception | StackOverflowError e)
        {
            return "{\"error\":" + quote("smack: " + e) + "}";
        }
        if (!(stanza instanceof JingleIQ iq))
        {
            return "{\"jingle\":false}";
        }
        StringBuilder out = new StringBuilder("{\"jingle\":true,\"action\":");
        out.append(iq.getAction() == null ? "null" : quote(iq.getAction().toString()));
        Set<Source> sources = new LinkedHashSet<>();
        Set<Group> groups = new LinkedHashSet<>();
        // jicofo's handler is registered for type set only (JingleIqRequestHandler); Smack answers any
        // other type itself.
        if (iq.getType() == IQ.Type.set && iq.getAction() != null && SOURCE_ACTIONS.contains(iq.getAction()))
        {
            try
            {
                fromJingle(iq.getContentList(), sources, groups);
            }
            catch (RuntimeException e)
            {
                return "{\"error\":" + quote("jicofo: " + e) + "}";
            }
        }
        out.append(",\"sources\":[");
        boolean first = true;
        for (Source source : sources)
        {
            out.append(first ? "" : ",").append("{\"ssrc\":").append(quote(Long.toString(source.ssrc())))
                .append(",\"media\":").append(quote(source.media()))
                .append(",\"name\":").append(quote(source.name()))
                .append(",\"videoType\":").append(quote(source.videoType()))
                .append(",\"msid\":").append(quote(source.msid())).append('}');
            first = false;
        }
        out.append("],\"groups\":[");
        first = true;
        for (Group group : groups)
        {
            out.append(first ? "" : ",").append("{\"semantics\":").append(quote(group.semantics()))
                .append(",\"media\":").append(quote(group.media())).append(",\"ssrcs\":[");
            for (int i = 0; i < group.ssrcs().size(); i++)
            {
                out.append(i == 0 ? "" : ",").append(quote(Long.toString(group.ssrcs().get(i))));
            }
            out.append("]}");
            first = false;
        }
        return out.append("]}").toString();
    }

    private static String quote(String text)
    {
        if (text == null)
        {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < text.length(); i++)
        {
            char c = text.charAt(i);
            if (c == '"' || c == '\\')
            {
                out.append('\\').append(c);
            }
            else if (c < 0x20)
            {
                out.append(String.format("\\u%04x", (int) c));
            }
            else
            {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    /** The next length line, or -1 at the end of the input. */
    private static int readLength(InputStream in) throws IOException
    {
        int length = 0;
        int c = in.read();
        if (c < 0)
        {
            return -1;
        }
        while (c != '\n')
        {
            if (c < '0' || c > '9')
            {
                throw new IOException("bad length line");
            }
            length = length * 10 + (c - '0');
            c = in.read();
        }
        return length;
    }

    public static void main(String[] args) throws IOException
    {
        register();
        InputStream in = new BufferedInputStream(System.in);
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        int length;
        while ((length = readLength(in)) >= 0)
        {
            byte[] bytes = in.readNBytes(length);
            if (bytes.length != length)
            {
                throw new IOException("input ends inside a stanza");
            }
            out.println(describe(new String(bytes, StandardCharsets.UTF_8)));
        }
        out.flush();
    }
}
